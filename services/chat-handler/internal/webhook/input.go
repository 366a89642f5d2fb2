package webhook

import (
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/switchboard-cc/switchboard/pkg/mediaurl"
)

// Twilio sends UTF-8 (form-encoded or JSON), but what arrives is bytes: a
// carrier's mangled encoding, a proxy or a forged request can put invalid
// sequences in any parameter. Protobuf refuses invalid UTF-8 in string
// fields, so such a parameter must never reach the event: it would fail at
// publish time, answer 503, and Twilio would retry the same bytes until the
// message is lost.

// exactParam reports whether a parameter is an identifier chat-handler
// routes or keys by (SIDs and addresses): those cannot be repaired without
// changing what they name, so invalid UTF-8 in them is a 400.
func exactParam(name string) bool {
	switch name {
	case "To", "From", "Author", "Identity", "WaId",
		"MessagingBinding.Address", "MessagingBinding.ProxyAddress", "MessagingBinding.ProjectedAddress":
		return true
	}
	return strings.HasSuffix(name, "Sid")
}

// repairParams makes every parameter value valid UTF-8: invalid sequences
// in free text (Body, ProfileName, Attributes, …) are replaced with U+FFFD
// so the customer's message is taken; the names of the repaired parameters
// are returned, sorted. An identifier with invalid UTF-8 is returned as bad
// instead (a 400). The signature is computed over the bytes as received,
// before this runs.
func repairParams(p url.Values) (repaired []string, bad string) {
	for name, vals := range p {
		for i, v := range vals {
			if utf8.ValidString(v) {
				continue
			}
			if exactParam(name) {
				if bad == "" || name < bad {
					bad = name
				}
				continue
			}
			vals[i] = strings.ToValidUTF8(v, "\uFFFD")
			if len(repaired) == 0 || repaired[len(repaired)-1] != name {
				repaired = append(repaired, name)
			}
		}
	}
	sort.Strings(repaired)
	return repaired, bad
}

// validMediaURL reports whether a media URL may be stored and shown to an
// agent (pkg/mediaurl): anything else (javascript:, data:, relative,
// repaired bytes) is dropped.
func validMediaURL(raw string, allowHTTP bool) bool { return mediaurl.Valid(raw, allowHTTP) }
