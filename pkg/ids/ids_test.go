package ids

import (
	"regexp"
	"sort"
	"testing"
	"time"
)

func TestNewIsUniqueOrderedAndTokenSafe(t *testing.T) {
	re := regexp.MustCompile(`^ss_[0-9a-hjkmnp-tv-z]{26}$`)
	seen := map[string]bool{}
	var list []string
	for i := 0; i < 2000; i++ {
		id := New("ss_")
		if !re.MatchString(id) {
			t.Fatalf("New() = %q, want ss_ + 26 base32 chars", id)
		}
		if seen[id] {
			t.Fatalf("New() repeated %q", id)
		}
		seen[id] = true
		list = append(list, id)
		if i == 999 {
			time.Sleep(2 * time.Millisecond) // next batch is in a later millisecond
		}
	}
	if !sort.StringsAreSorted([]string{list[0], list[1999]}) {
		t.Errorf("ids of a later millisecond sort before earlier ones: %s > %s", list[0], list[1999])
	}
}
