// Package segments counts SMS segments the way Twilio bills them: GSM-7
// (160 septets alone, 153 per part when concatenated) unless any character
// falls outside GSM 03.38, in which case the whole message is UCS-2 (70 UTF-16
// code units alone, 67 per part). Characters that need two septets or two code
// units, and grapheme clusters such as flags, are never split across parts.
package segments

import (
	"strings"
	"unicode"
	"unicode/utf16"
)

// Encoding names the character set a body is sent in.
type Encoding string

const (
	GSM7 Encoding = "GSM-7"
	UCS2 Encoding = "UCS-2"
)

// GSM 03.38 default alphabet, one septet each.
const gsm7Basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"

// GSM 03.38 extension table, two septets each (escape + code).
const gsm7Ext = "\f^{}\\[~]|€"

const (
	gsmSingle  = 160
	gsmPart    = 153
	ucs2Single = 70
	ucs2Part   = 67
)

// Info describes how a body is encoded and billed.
type Info struct {
	Encoding Encoding
	// Units is septets for GSM-7 and UTF-16 code units for UCS-2.
	Units    int
	Segments int
}

// Count returns the encoding, size and number of segments of body. An empty
// body counts as one segment, as Twilio reports for media-only messages.
func Count(body string) Info {
	if isGSM7(body) {
		return countGSM(body)
	}
	return countUCS2(body)
}

func isGSM7(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune(gsm7Basic, r) && !strings.ContainsRune(gsm7Ext, r) {
			return false
		}
	}
	return true
}

func septets(r rune) int {
	if strings.ContainsRune(gsm7Ext, r) {
		return 2
	}
	return 1
}

func countGSM(s string) Info {
	total := 0
	for _, r := range s {
		total += septets(r)
	}
	info := Info{Encoding: GSM7, Units: total, Segments: 1}
	if total <= gsmSingle {
		return info
	}
	info.Segments = pack(runeCosts(s, septets), gsmPart)
	return info
}

func countUCS2(s string) Info {
	clusters := graphemes(s)
	costs := make([]int, len(clusters))
	total := 0
	for i, c := range clusters {
		costs[i] = len(utf16.Encode([]rune(c)))
		total += costs[i]
	}
	info := Info{Encoding: UCS2, Units: total, Segments: 1}
	if total <= ucs2Single {
		return info
	}
	info.Segments = pack(costs, ucs2Part)
	return info
}

func runeCosts(s string, cost func(rune) int) []int {
	var out []int
	for _, r := range s {
		out = append(out, cost(r))
	}
	return out
}

// pack fills parts of the given size greedily without splitting an item. An
// item larger than a whole part (a very long emoji sequence) cannot stay
// whole and spills over into the following parts.
func pack(costs []int, size int) int {
	parts, used := 1, 0
	for _, c := range costs {
		if c > size {
			used += c
			for used > size {
				parts++
				used -= size
			}
			continue
		}
		if used+c > size {
			parts++
			used = 0
		}
		used += c
	}
	return parts
}

// graphemes splits s into user-perceived characters closely enough for
// segmenting: regional-indicator pairs (flags), emoji modifier and variation
// selector sequences, zero-width-joiner sequences, keycaps, tag sequences and
// combining marks stay with the character before them.
func graphemes(s string) []string {
	var out []string
	runes := []rune(s)
	for i := 0; i < len(runes); {
		j := i + 1
		if isRegional(runes[i]) && j < len(runes) && isRegional(runes[j]) {
			j++
		}
		for j < len(runes) {
			r := runes[j]
			switch {
			case isExtend(r):
				j++
			case r == 0x200D && j+1 < len(runes): // ZWJ joins the next character
				j += 2
			default:
				goto done
			}
		}
	done:
		out = append(out, string(runes[i:j]))
		i = j
	}
	return out
}

func isRegional(r rune) bool { return r >= 0x1F1E6 && r <= 0x1F1FF }

func isExtend(r rune) bool {
	switch {
	case r >= 0xFE00 && r <= 0xFE0F: // variation selectors
		return true
	case r >= 0x1F3FB && r <= 0x1F3FF: // skin tone modifiers
		return true
	case r == 0x20E3: // combining enclosing keycap
		return true
	case r >= 0xE0020 && r <= 0xE007F: // tag characters (subdivision flags)
		return true
	case unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r):
		return true
	}
	return false
}
