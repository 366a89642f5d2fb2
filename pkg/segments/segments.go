// Package segments counts the SMS segments a message body costs, with the
// rules Twilio bills by (docs/twilio-wire-facts §6, after Twilio's own
// message-segment-calculator):
//
//   - A body made only of GSM 03.38 characters (basic table plus the
//     extension table) is sent as GSM-7: 160 septets fit one segment, a longer
//     body is split into parts of 153 septets. Extension characters cost two
//     septets (escape + code) and are never split across parts.
//   - Any other character, even one emoji, switches the whole body to UCS-2:
//     70 UTF-16 code units fit one segment, parts hold 67. Astral characters
//     cost two code units; grapheme clusters (flags, ZWJ sequences, emoji with
//     skin tones, combining marks) are never split across parts.
//
// This is the one implementation Switchboard uses: outbound-sender rates
// senders by it and the agent console shows its numbers (the sessions
// service counts for the browser). Smart Encoding (Twilio replacing
// look-alike Unicode characters by GSM-7 ones) is not applied: Switchboard
// does not ask Twilio for it.
package segments

import (
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Encoding is the character set a body is sent in.
type Encoding string

// Encodings.
const (
	GSM7 Encoding = "GSM-7"
	UCS2 Encoding = "UCS-2"
)

// Segment capacities.
const (
	GSM7Single = 160 // septets in a lone GSM-7 segment
	GSM7Part   = 153 // septets per part of a concatenated GSM-7 message
	UCS2Single = 70  // UTF-16 code units in a lone UCS-2 segment
	UCS2Part   = 67  // UTF-16 code units per part of a concatenated UCS-2 message
	// MaxBody is Twilio's limit for one body, in characters.
	MaxBody = 1600
)

// The GSM 03.38 tables exactly as in the facts document (Twilio's
// calculator): 127 basic characters of one septet (the escape itself
// excluded) and 10 extension characters of two septets.
const (
	gsm7Basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsm7Ext = "\f^{}\\[~]|€"
)

var septetCost = func() map[rune]int {
	m := make(map[rune]int, 140)
	for _, r := range gsm7Basic {
		m[r] = 1
	}
	for _, r := range gsm7Ext {
		m[r] = 2
	}
	return m
}()

// Septets returns how many GSM-7 septets r costs: 1 for the basic table, 2
// for the extension table, 0 when r is not GSM-7 at all.
func Septets(r rune) int { return septetCost[r] }

// IsGSM7 reports whether every character of s is in the GSM-7 tables.
func IsGSM7(s string) bool {
	for _, r := range s {
		if septetCost[r] == 0 {
			return false
		}
	}
	return true
}

// Result describes what a body costs.
type Result struct {
	Encoding Encoding `json:"encoding"`
	// Segments billed; 0 for an empty body.
	Segments int `json:"segments"`
	// Units used: septets for GSM-7, UTF-16 code units for UCS-2.
	Units int `json:"units"`
	// Characters is the number of user-perceived characters (grapheme
	// clusters).
	Characters int `json:"characters"`
	// PerSegment is the capacity of each segment at this length: 160 or 70
	// for a single segment, 153 or 67 once the body is split.
	PerSegment int `json:"per_segment"`
	// Remaining is how many units still fit before another segment is
	// needed (for a single segment: before the body must be split).
	Remaining int `json:"remaining"`
	// NonGSM lists (up to five, distinct, in order) the characters that
	// forced UCS-2.
	NonGSM []string `json:"non_gsm,omitempty"`
}

// Count returns the encoding and segments of body.
func Count(body string) Result {
	enc, parts, units := split(body)
	res := Result{Encoding: enc, Segments: len(parts), Units: units, Characters: len(Graphemes(body))}
	single, part := GSM7Single, GSM7Part
	if enc == UCS2 {
		single, part = UCS2Single, UCS2Part
		res.NonGSM = nonGSM(body, 5)
	}
	switch {
	case len(parts) <= 1:
		res.PerSegment, res.Remaining = single, single-units
	default:
		res.PerSegment = part
		res.Remaining = part - cost(enc, parts[len(parts)-1])
	}
	return res
}

// Segments is Count(body).Segments, computed without building the parts
// when the body fits one segment (the common case on a send path).
func Segments(body string) int {
	if body == "" {
		return 0
	}
	septets, units, gsm := 0, 0, true
	for _, r := range body {
		units += utf16.RuneLen(r)
		if c := septetCost[r]; c == 0 {
			gsm = false
		} else {
			septets += c
		}
	}
	if gsm && septets <= GSM7Single || !gsm && units <= UCS2Single {
		return 1
	}
	_, parts, _ := split(body)
	return len(parts)
}

// Split returns the encoding of body and the parts it is sent in; nil for
// an empty body.
func Split(body string) (Encoding, []string) {
	enc, parts, _ := split(body)
	return enc, parts
}

func split(body string) (Encoding, []string, int) {
	if body == "" {
		return GSM7, nil, 0
	}
	enc := GSM7
	if !IsGSM7(body) {
		enc = UCS2
	}
	var units []string // the indivisible pieces of body
	if enc == GSM7 {
		for i, r := range body {
			units = append(units, body[i:i+utf8.RuneLen(r)])
		}
	} else {
		for _, g := range Graphemes(body) {
			if unitsOf(g) <= UCS2Part {
				units = append(units, g)
				continue
			}
			// A cluster longer than a part (pathological combining
			// sequences) is split between code points.
			for i, r := range g {
				units = append(units, g[i:i+utf8.RuneLen(r)])
			}
		}
	}
	total := 0
	for _, u := range units {
		total += cost(enc, u)
	}
	single, part := GSM7Single, GSM7Part
	if enc == UCS2 {
		single, part = UCS2Single, UCS2Part
	}
	if total <= single {
		return enc, []string{body}, total
	}
	var parts []string
	var cur strings.Builder
	used := 0
	for _, u := range units {
		c := cost(enc, u)
		if used+c > part && used > 0 {
			parts = append(parts, cur.String())
			cur.Reset()
			used = 0
		}
		cur.WriteString(u)
		used += c
	}
	if used > 0 {
		parts = append(parts, cur.String())
	}
	return enc, parts, total
}

func cost(enc Encoding, s string) int {
	if enc == UCS2 {
		return unitsOf(s)
	}
	n := 0
	for _, r := range s {
		n += septetCost[r]
	}
	return n
}

func unitsOf(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

func nonGSM(s string, max int) []string {
	var out []string
	seen := map[string]bool{}
	for _, g := range Graphemes(s) {
		if IsGSM7(g) || seen[g] {
			continue
		}
		seen[g] = true
		out = append(out, g)
		if len(out) == max {
			break
		}
	}
	return out
}

// Graphemes splits s into user-perceived characters. It implements the
// parts of Unicode's extended grapheme cluster rules that matter for SMS
// text: CR LF, combining marks, variation selectors, emoji modifiers, ZWJ
// sequences, tag sequences (subdivision flags), and regional-indicator
// pairs (flags). Hangul jamo composition and prepend characters are not
// modelled.
func Graphemes(s string) []string {
	var out []string
	start := 0
	var prev rune = -1
	riRun := 0 // regional indicators in the current cluster
	joined := false
	for i, r := range s {
		if prev >= 0 && !extends(prev, r, riRun, joined) {
			out = append(out, s[start:i])
			start = i
			riRun = 0
		}
		joined = r == zwj
		if isRegionalIndicator(r) {
			riRun++
		}
		prev = r
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

const zwj = '\u200d'

func extends(prev, r rune, riRun int, afterZWJ bool) bool {
	switch {
	case prev == '\r' && r == '\n':
		return true
	case prev == '\r' || prev == '\n' || r == '\r' || r == '\n':
		return false
	case r == zwj, isExtend(r):
		return true
	case afterZWJ && isPictographic(r):
		return true
	case isRegionalIndicator(r) && isRegionalIndicator(prev) && riRun%2 == 1:
		return true
	}
	return false
}

func isExtend(r rune) bool {
	switch {
	case r >= 0xFE00 && r <= 0xFE0F, r >= 0xE0100 && r <= 0xE01EF: // variation selectors
		return true
	case r >= 0x1F3FB && r <= 0x1F3FF: // emoji skin-tone modifiers
		return true
	case r >= 0xE0020 && r <= 0xE007F: // tags (subdivision flags)
		return true
	case r == 0x20E3: // combining enclosing keycap
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Mc)
}

func isRegionalIndicator(r rune) bool { return r >= 0x1F1E6 && r <= 0x1F1FF }

// isPictographic approximates Extended_Pictographic: the emoji blocks and
// the older symbols emoji sequences join.
func isPictographic(r rune) bool {
	switch {
	case r >= 0x1F000 && r <= 0x1FAFF:
		return true
	case r >= 0x2600 && r <= 0x27BF, r >= 0x2300 && r <= 0x23FF, r >= 0x2B00 && r <= 0x2BFF:
		return true
	case r == 0x00A9, r == 0x00AE, r == 0x203C, r == 0x2049, r == 0x2122, r == 0x2139:
		return true
	}
	return false
}

// gsmLookalikes maps characters that force UCS-2 though GSM-7 has one that
// reads the same (typographic quotes, dashes, spaces, the ellipsis).
var gsmLookalikes = map[rune]string{
	'\u2018': "'", '\u2019': "'", '\u201A': "'", '\u201B': "'", '\u2032': "'",
	'\u201C': `"`, '\u201D': `"`, '\u201E': `"`, '\u201F': `"`, '\u2033': `"`, '\u00AB': `"`, '\u00BB': `"`,
	'\u2010': "-", '\u2011': "-", '\u2012': "-", '\u2013': "-", '\u2014': "-", '\u2015': "-", '\u2212': "-",
	'\u2026': "...",
	'\u00A0': " ", '\u2002': " ", '\u2003': " ", '\u2007': " ", '\u2009': " ", '\u200A': " ", '\u202F': " ",
	'\u200B': "", '\uFEFF': "",
	'\u2022': "-", '\u00B7': "-",
	'\u2039': "<", '\u203A': ">",
}

// GSM7Rewrite replaces the characters of body that force UCS-2 only
// because of their typography (curly quotes, long dashes, the ellipsis,
// special spaces) with their GSM-7 look-alikes. It reports whether the
// result is all GSM-7: false when other characters (emoji, most scripts)
// would still force UCS-2, or when there was nothing to replace.
func GSM7Rewrite(body string) (string, bool) {
	if IsGSM7(body) {
		return body, false
	}
	var b strings.Builder
	changed := false
	for _, r := range body {
		if s, ok := gsmLookalikes[r]; ok {
			b.WriteString(s)
			changed = true
			continue
		}
		b.WriteRune(r)
	}
	out := b.String()
	return out, changed && IsGSM7(out)
}
