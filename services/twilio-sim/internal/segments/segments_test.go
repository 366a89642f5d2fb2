package segments

import (
	"strings"
	"testing"
)

func TestCount(t *testing.T) {
	digits := func(n int) string { return strings.Repeat("1", n) }
	tests := []struct {
		name     string
		body     string
		encoding Encoding
		units    int
		segments int
	}{
		{"empty", "", GSM7, 0, 1},
		{"160 GSM-7 digits", digits(160), GSM7, 160, 1},
		{"161 GSM-7 digits", digits(161), GSM7, 161, 2},
		{"306 GSM-7 digits", digits(306), GSM7, 306, 2},
		{"307 GSM-7 digits", digits(307), GSM7, 307, 3},
		{"caret costs two septets", "^" + digits(159), GSM7, 161, 2},
		{"extension char is not split", digits(152) + "€" + digits(10), GSM7, 164, 2},
		{"euro at part boundary moves whole", digits(152) + "€" + digits(152), GSM7, 306, 3},
		{"70 UCS-2 units", "é" + "ç" + digits(68), UCS2, 70, 1},
		{"emoji plus 68 digits", "😜" + digits(68), UCS2, 70, 1},
		{"emoji plus 69 digits", "😜" + digits(69), UCS2, 71, 2},
		{"134 UCS-2 units", "ç" + digits(133), UCS2, 134, 2},
		{"135 UCS-2 units", "ç" + digits(134), UCS2, 135, 3},
		{"surrogate pair is not split", "ç" + digits(65) + "😜" + digits(66), UCS2, 134, 3},
		{"flag kept whole", "ç" + digits(64) + "🇮🇹" + digits(65), UCS2, 134, 3},
		{"backtick is not GSM-7", "`", UCS2, 1, 1},
		{"lowercase c cedilla is not GSM-7", "ç", UCS2, 1, 1},
		{"uppercase C cedilla is GSM-7", "Ç", GSM7, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Count(tt.body)
			if got.Encoding != tt.encoding || got.Units != tt.units || got.Segments != tt.segments {
				t.Errorf("Count() = %+v, want {Encoding:%s Units:%d Segments:%d}", got, tt.encoding, tt.units, tt.segments)
			}
		})
	}
}

func TestGraphemesKeepZWJSequences(t *testing.T) {
	got := graphemes("a🏳️‍🌈b👍🏽")
	want := []string{"a", "🏳️‍🌈", "b", "👍🏽"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("graphemes() = %q, want %q", got, want)
	}
}
