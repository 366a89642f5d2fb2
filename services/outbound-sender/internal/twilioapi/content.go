package twilioapi

import (
	content "github.com/twilio/twilio-go/rest/content/v1"
)

// Content is one template of an account's Content API
// (content.twilio.com/v1/Content), as Twilio describes it.
type Content struct {
	SID, FriendlyName, Language string
	// Variables are the placeholders' default values.
	Variables map[string]any
	// Types maps a content type ("twilio/text") to its object.
	Types map[string]any
}

// contentPageSize is how many templates one page of the list carries;
// maxContents bounds the whole list.
const (
	contentPageSize = 100
	maxContents     = 1000
)

// ListContent reads the account's templates, following the list's pages
// (at most 1000 templates). Errors are *Error.
func (a *API) ListContent(creds Credentials) ([]Content, error) {
	p := &content.ListContentParams{}
	p.SetPageSize(contentPageSize).SetLimit(maxContents)
	list, err := a.clients.For(creds).ContentV1.ListContent(p)
	if err != nil {
		return nil, classify(err)
	}
	out := make([]Content, 0, len(list))
	for _, c := range list {
		item := Content{SID: deref(c.Sid), FriendlyName: deref(c.FriendlyName), Language: deref(c.Language)}
		if c.Variables != nil {
			item.Variables = *c.Variables
		}
		if c.Types != nil {
			item.Types = *c.Types
		}
		out = append(out, item)
	}
	return out, nil
}
