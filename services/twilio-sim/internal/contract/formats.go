package contract

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

var (
	e164Re      = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	shortCodeRe = regexp.MustCompile(`^[0-9]{3,8}$`)
	alphaRe     = regexp.MustCompile(`^[A-Za-z0-9 ]{1,11}$`)
	currencyRe  = regexp.MustCompile(`^[A-Za-z]{3}$`)
	channelRe   = regexp.MustCompile(`^[a-z]+:`)
)

// formatValidators checks the formats Twilio's documents use beyond the
// OpenAPI standard ones. They are passed per validation, so nothing global
// in kin-openapi changes.
func formatValidators() []openapi3.SchemaValidationOption {
	return []openapi3.SchemaValidationOption{
		openapi3.WithStringFormatValidator("date-time-rfc-2822", openapi3.NewCallbackValidator(func(s string) error {
			if _, err := time.Parse(time.RFC1123Z, s); err != nil {
				return fmt.Errorf("%q is not an RFC 2822 date: %w", s, err)
			}
			return nil
		})),
		openapi3.WithStringFormatValidator("phone-number", openapi3.NewCallbackValidator(func(s string) error {
			if channelRe.MatchString(s) {
				_, addr, _ := strings.Cut(s, ":")
				if addr == "" {
					return fmt.Errorf("%q is a channel address without an address", s)
				}
				return nil
			}
			if e164Re.MatchString(s) || shortCodeRe.MatchString(s) || (alphaRe.MatchString(s) && strings.ContainsAny(strings.ToLower(s), "abcdefghijklmnopqrstuvwxyz")) {
				return nil
			}
			return fmt.Errorf("%q is not an E.164 number, short code, alphanumeric sender or channel address", s)
		})),
		// The 2010 API's own examples put relative references such as
		// first_page_uri "/2010-04-01/…" under format uri, so those pass too.
		openapi3.WithStringFormatValidator("uri", openapi3.NewCallbackValidator(func(s string) error {
			u, err := url.Parse(s)
			if err == nil && (u.Scheme != "" && u.Host != "" || strings.HasPrefix(s, "/")) {
				return nil
			}
			return fmt.Errorf("%q is neither an absolute URI nor an absolute path", s)
		})),
		openapi3.WithStringFormatValidator("currency", openapi3.NewCallbackValidator(func(s string) error {
			if !currencyRe.MatchString(s) {
				return fmt.Errorf("%q is not an ISO 4217 currency code", s)
			}
			return nil
		})),
	}
}
