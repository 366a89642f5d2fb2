package runner

import (
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"

	"github.com/switchboard-cc/switchboard/pkg/workflowdef"
)

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// Answer checks a Collect Information answer against its type and pattern
// and returns the value to save.
func Answer(a *workflowdef.Activity, text string) (string, bool) {
	v := strings.TrimSpace(text)
	if v == "" {
		return "", false
	}
	switch a.StringParam("type") {
	case "number":
		n := strings.ReplaceAll(v, ",", ".")
		if _, err := strconv.ParseFloat(n, 64); err != nil {
			return "", false
		}
		v = n
	case "email":
		addr, err := mail.ParseAddress(v)
		if err != nil || addr.Name != "" || !strings.Contains(addr.Address[strings.LastIndex(addr.Address, "@")+1:], ".") {
			return "", false
		}
		v = addr.Address
	case "phone":
		p := strings.Map(func(r rune) rune {
			if r == ' ' || r == '-' || r == '(' || r == ')' || r == '.' {
				return -1
			}
			return r
		}, v)
		if strings.HasPrefix(p, "00") {
			p = "+" + p[2:]
		}
		if !e164.MatchString(p) {
			return "", false
		}
		v = p
	case "date":
		var ok bool
		for _, layout := range []string{"2006-01-02", "2.1.2006", "02.01.2006"} {
			if d, err := time.Parse(layout, v); err == nil {
				v, ok = d.Format("2006-01-02"), true
				break
			}
		}
		if !ok {
			return "", false
		}
	case "yes_no":
		switch fold(v) {
		case "yes", "y", "ja", "j", "oui", "si", "true", "1":
			v = "yes"
		case "no", "n", "nein", "non", "false", "0":
			v = "no"
		default:
			return "", false
		}
	}
	if p := a.StringParam("pattern"); p != "" {
		re, err := regexp.Compile(p)
		if err != nil || !re.MatchString(v) {
			return "", false
		}
	}
	return v, true
}

// unaccent maps the accented Latin letters of the languages customers
// write in to their base letters.
var unaccent = strings.NewReplacer(
	"à", "a", "á", "a", "â", "a", "ã", "a", "ä", "a", "å", "a", "æ", "ae",
	"ç", "c", "è", "e", "é", "e", "ê", "e", "ë", "e",
	"ì", "i", "í", "i", "î", "i", "ï", "i", "ñ", "n",
	"ò", "o", "ó", "o", "ô", "o", "õ", "o", "ö", "o", "ø", "o", "œ", "oe",
	"ù", "u", "ú", "u", "û", "u", "ü", "u", "ý", "y", "ÿ", "y", "ß", "ss",
)

// fold lower-cases s, drops accents and surrounding punctuation and
// collapses spaces: "  Réservation! " becomes "reservation".
func fold(s string) string {
	out := unaccent.Replace(strings.ToLower(s))
	out = strings.TrimFunc(out, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	return strings.Join(strings.Fields(out), " ")
}

// Choose matches a menu answer: the choice's number ("2", "2."), the choice
// itself, or an answer that contains exactly one choice as whole words
// ("I'd like billing please"), all ignoring case and accents. It returns
// the choice or "".
func Choose(choices []string, text string) string {
	ans := fold(text)
	if ans == "" {
		return ""
	}
	if n, err := strconv.Atoi(ans); err == nil {
		if n >= 1 && n <= len(choices) {
			return choices[n-1]
		}
		return ""
	}
	for _, c := range choices {
		if fold(c) == ans {
			return c
		}
	}
	found := ""
	padded := " " + strings.Join(strings.FieldsFunc(ans, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }), " ") + " "
	for _, c := range choices {
		if f := fold(c); f != "" && strings.Contains(padded, " "+f+" ") {
			if found != "" {
				return "" // ambiguous
			}
			found = c
		}
	}
	return found
}

// menu is the prompt followed by the numbered choices.
func menu(prompt string, choices []string) string {
	var b strings.Builder
	b.WriteString(strings.TrimRight(prompt, "\n "))
	for i, c := range choices {
		b.WriteString("\n" + strconv.Itoa(i+1) + ". " + c)
	}
	return b.String()
}

var paramRef = regexp.MustCompile(`\$\{([A-Za-z0-9_.-]+)\}`)

// expand replaces ${name} with the session parameter's value, or a system
// parameter's (system(name)) when the session has no parameter of that name.
func expand(s string, params map[string]string, system func(string) (string, bool)) string {
	return paramRef.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		if v, ok := params[name]; ok {
			return v
		}
		if system != nil {
			if v, ok := system(name); ok {
				return v
			}
		}
		return ""
	})
}

// CheckParameter applies a Check Parameter activity to the parameters.
func CheckParameter(params map[string]string, a *workflowdef.Activity) bool {
	v, ok := params[a.StringParam("parameter")]
	want := expand(a.StringParam("value"), params, nil)
	num := func(s string) (float64, bool) {
		f, err := strconv.ParseFloat(strings.ReplaceAll(strings.TrimSpace(s), ",", "."), 64)
		return f, err == nil
	}
	equal := func() bool {
		x, xok := num(v)
		y, yok := num(want)
		if xok && yok {
			return x == y
		}
		return strings.EqualFold(strings.TrimSpace(v), strings.TrimSpace(want))
	}
	order := func(cmp func(x, y float64) bool) bool {
		x, xok := num(v)
		y, yok := num(want)
		return ok && xok && yok && cmp(x, y)
	}
	switch a.StringParam("operator") {
	case "equals":
		return ok && equal()
	case "not_equals":
		return !ok || !equal()
	case "contains":
		return ok && strings.Contains(strings.ToLower(v), strings.ToLower(want))
	case "matches":
		re, err := regexp.Compile(want)
		return ok && err == nil && re.MatchString(v)
	case "exists":
		return ok
	case "empty":
		return strings.TrimSpace(v) == ""
	case "greater_than":
		return order(func(x, y float64) bool { return x > y })
	case "greater_or_equal":
		return order(func(x, y float64) bool { return x >= y })
	case "less_than":
		return order(func(x, y float64) bool { return x < y })
	case "less_or_equal":
		return order(func(x, y float64) bool { return x <= y })
	}
	return false
}

// Open reports whether the opening hours are open at t; no opening hours
// means always open. Windows are wall-clock times in the hours' time zone,
// so they follow daylight-saving changes.
func Open(h *configv1.OpeningHours, t time.Time) bool {
	if h == nil || (len(h.GetWindows()) == 0 && len(h.GetHolidays()) == 0) {
		return true
	}
	loc, err := time.LoadLocation(h.GetTimeZone())
	if err != nil {
		loc = time.UTC
	}
	local := t.In(loc)
	day := local.Format("2006-01-02")
	for _, hd := range h.GetHolidays() {
		if hd == day {
			return false
		}
	}
	now := local.Format("15:04")
	for _, w := range h.GetWindows() {
		if int(w.GetWeekday()) == int(local.Weekday()) && now >= w.GetStart() && now < w.GetEnd() {
			return true
		}
	}
	return false
}
