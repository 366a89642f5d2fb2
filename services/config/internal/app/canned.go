package app

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
)

// Canned responses' limits.
const (
	maxCanned      = 200
	maxCannedTitle = 200
	maxCannedBody  = 1600
)

var cannedShortcut = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// checkCanned validates a list of canned responses: shortcuts well formed
// and unique, titles and bodies within bounds.
func checkCanned(vs *violations, field string, list []*configv1.CannedResponse) {
	if len(list) > maxCanned {
		vs.add(field, "has %d entries, at most %d allowed", len(list), maxCanned)
		return
	}
	seen := map[string]int{}
	for i, c := range list {
		at := fmt.Sprintf("%s[%d]", field, i)
		switch sc := c.GetShortcut(); {
		case !cannedShortcut.MatchString(sc):
			vs.add(at+".shortcut", "%q is not a shortcut: 1-32 characters of a-z, 0-9, '_' and '-', starting with a letter or digit", sc)
		case seen[sc] > 0:
			vs.add(at+".shortcut", "%q is already used by %s[%d]", sc, field, seen[sc]-1)
		default:
			seen[sc] = i + 1
		}
		if n := utf8.RuneCountInString(c.GetTitle()); n > maxCannedTitle {
			vs.add(at+".title", "is %d characters, at most %d allowed", n, maxCannedTitle)
		}
		switch n := utf8.RuneCountInString(c.GetBody()); {
		case strings.TrimSpace(c.GetBody()) == "":
			vs.add(at+".body", "is required")
		case !utf8.ValidString(c.GetBody()):
			vs.add(at+".body", "is not valid UTF-8")
		case n > maxCannedBody:
			vs.add(at+".body", "is %d characters, at most %d allowed (one Twilio message)", n, maxCannedBody)
		}
	}
}
