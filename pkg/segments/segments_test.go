package segments

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func digits(n int) string { return strings.Repeat("1", n) }

// Vectors from docs/twilio-wire-facts §6 (Twilio's message-segment-calculator)
// plus the boundaries around them.
func TestCount(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		encoding Encoding
		units    int
		segments int
	}{
		{"empty", "", GSM7, 0, 0},
		{"160 digits is one GSM-7 segment", digits(160), GSM7, 160, 1},
		{"161 digits is two", digits(161), GSM7, 161, 2},
		{"306 digits is two parts of 153", digits(306), GSM7, 306, 2},
		{"307 digits is three", digits(307), GSM7, 307, 3},
		{"caret plus 159 digits is 161 septets", "^" + digits(159), GSM7, 161, 2},
		{"caret plus 158 digits fits", "^" + digits(158), GSM7, 160, 1},
		{"every extension char costs two", gsm7Ext, GSM7, 20, 1},
		{"euro straddling a part boundary moves whole", digits(152) + "€" + digits(152), GSM7, 306, 3},
		{"emoji plus 68 digits is 70 units", "😜" + digits(68), UCS2, 70, 1},
		{"emoji plus 69 digits is two", "😜" + digits(69), UCS2, 71, 2},
		{"70 BMP characters", "ç" + digits(69), UCS2, 70, 1},
		{"134 units is two parts of 67", "ç" + digits(133), UCS2, 134, 2},
		{"135 units is three", "ç" + digits(134), UCS2, 135, 3},
		{"surrogate pair at a boundary moves whole", "ç" + digits(65) + "😜" + digits(66), UCS2, 134, 3},
		{"flag at a boundary moves whole", "ç" + digits(64) + "🇮🇹" + digits(65), UCS2, 134, 3},
		{"ZWJ sequence at a boundary moves whole", "ç" + digits(63) + "🏳️‍🌈" + digits(64), UCS2, 134, 3},
		{"flag is four units", "🇮🇹", UCS2, 4, 1},
		{"rainbow flag is six units", "🏳️‍🌈", UCS2, 6, 1},
		{"backtick is not GSM-7", "`", UCS2, 1, 1},
		{"curly quote is not GSM-7", "it’s", UCS2, 4, 1},
		{"lowercase c cedilla is not GSM-7", "ç", UCS2, 1, 1},
		{"uppercase C cedilla is GSM-7", "Ç", GSM7, 1, 1},
		{"CR LF are GSM-7", "a\r\nb", GSM7, 4, 1},
		{"1600 GSM-7 chars", strings.Repeat("a", 1600), GSM7, 1600, 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Count(tt.body)
			if got.Encoding != tt.encoding || got.Units != tt.units || got.Segments != tt.segments {
				t.Errorf("Count() = %+v, want encoding %s, units %d, segments %d", got, tt.encoding, tt.units, tt.segments)
			}
			if n := Segments(tt.body); n != tt.segments {
				t.Errorf("Segments() = %d, want %d", n, tt.segments)
			}
		})
	}
}

func TestTablesMatchFactsDoc(t *testing.T) {
	if got := utf8.RuneCountInString(gsm7Basic); got != 127 {
		t.Errorf("basic table has %d characters, want 127", got)
	}
	if got := utf8.RuneCountInString(gsm7Ext); got != 10 {
		t.Errorf("extension table has %d characters, want 10", got)
	}
	for _, r := range gsm7Ext {
		if Septets(r) != 2 {
			t.Errorf("Septets(%q) = %d, want 2", r, Septets(r))
		}
	}
	if Septets('\x1b') != 0 {
		t.Error("the escape character itself must not count as GSM-7 text")
	}
}

func TestRemainingAndCapacity(t *testing.T) {
	tests := []struct {
		body                 string
		perSegment, remainin int
	}{
		{"", 160, 160},
		{"hello", 160, 155},
		{digits(161), 153, 153 - 8},
		{"é😀", 70, 67},
		{"ç" + digits(70), 67, 67 - 4},
	}
	for _, tt := range tests {
		got := Count(tt.body)
		if got.PerSegment != tt.perSegment || got.Remaining != tt.remainin {
			t.Errorf("Count(%q): per segment %d, remaining %d; want %d, %d", tt.body, got.PerSegment, got.Remaining, tt.perSegment, tt.remainin)
		}
	}
}

func TestNonGSMNamesTheCulprits(t *testing.T) {
	got := Count("Hi “Ann” 😀😀 ok")
	want := []string{"“", "”", "😀"}
	if strings.Join(got.NonGSM, " ") != strings.Join(want, " ") {
		t.Errorf("NonGSM = %q, want %q", got.NonGSM, want)
	}
	if Count("plain").NonGSM != nil {
		t.Error("a GSM-7 body has no culprits")
	}
}

func TestSplitNeverBreaksClustersOrExtensionChars(t *testing.T) {
	bodies := []string{
		digits(152) + "€" + digits(300),
		strings.Repeat("🇮🇹a", 80),
		strings.Repeat("🏳️‍🌈", 40),
		strings.Repeat("👍🏽x", 50),
		strings.Repeat("{", 400),
	}
	for _, body := range bodies {
		enc, parts := Split(body)
		if strings.Join(parts, "") != body {
			t.Fatalf("parts of %q do not join back to the body", body[:20])
		}
		capacity := GSM7Part
		if enc == UCS2 {
			capacity = UCS2Part
		}
		clusters := map[string]bool{}
		for _, g := range Graphemes(body) {
			clusters[g] = true
		}
		for i, p := range parts {
			if c := cost(enc, p); c > capacity {
				t.Errorf("part %d costs %d > %d", i, c, capacity)
			}
			for _, g := range Graphemes(p) {
				if !clusters[g] {
					t.Errorf("part %d holds a broken cluster %q", i, g)
				}
			}
		}
		if len(parts) != Count(body).Segments {
			t.Errorf("Split gave %d parts, Count %d segments", len(parts), Count(body).Segments)
		}
	}
}

func TestGraphemes(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"a🏳️‍🌈b👍🏽", []string{"a", "🏳️‍🌈", "b", "👍🏽"}},
		{"🇮🇹🇨🇭", []string{"🇮🇹", "🇨🇭"}},
		{"🇮🇹🇨", []string{"🇮🇹", "🇨"}},
		{"e\u0301x", []string{"e\u0301", "x"}},
		{"1️⃣", []string{"1️⃣"}},
		{"👨‍👩‍👧", []string{"👨‍👩‍👧"}},
		{"🏴󠁧󠁢󠁳󠁣󠁴󠁿!", []string{"🏴󠁧󠁢󠁳󠁣󠁴󠁿", "!"}},
		{"a\r\nb", []string{"a", "\r\n", "b"}},
	}
	for _, tt := range tests {
		if got := Graphemes(tt.in); strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("Graphemes(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzCount(f *testing.F) {
	f.Add("hello")
	f.Add("😜" + digits(69))
	f.Add(digits(152) + "€" + digits(152))
	f.Fuzz(func(t *testing.T, body string) {
		if !utf8.ValidString(body) {
			return
		}
		res := Count(body)
		enc, parts := Split(body)
		if strings.Join(parts, "") != body || enc != res.Encoding || len(parts) != res.Segments {
			t.Fatalf("Split/Count disagree for %q", body)
		}
		if res.Remaining < 0 {
			t.Fatalf("negative remaining for %q", body)
		}
		if n := Segments(body); n != res.Segments {
			t.Fatalf("Segments(%q) = %d, Count says %d", body, n, res.Segments)
		}
	})
}

func TestGSM7Rewrite(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"It\u2019s \u201Cready\u201D \u2014 see you\u2026", `It's "ready" - see you...`, true},
		{"plain GSM text", "plain GSM text", false},
		{"Thanks \u2019 \U0001F600", "Thanks \u2019 \U0001F600", false}, // the emoji stays UCS-2
		{"\u041F\u0440\u0438\u0432\u0435\u0442", "\u041F\u0440\u0438\u0432\u0435\u0442", false},
	} {
		got, ok := GSM7Rewrite(tt.in)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("GSM7Rewrite(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
		if ok && Count(got).Encoding != GSM7 {
			t.Errorf("rewrite of %q is still %s", tt.in, Count(got).Encoding)
		}
	}
}
