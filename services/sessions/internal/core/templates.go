package core

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	outboundv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/outbound/v1"

	"github.com/switchboard-cc/switchboard/services/sessions/internal/protocol"
	"github.com/switchboard-cc/switchboard/services/sessions/internal/store"
)

// WhatsApp templates: when a chat's 24-hour window has closed, the agent
// sends one of the connector's approved templates (Twilio's Content API,
// listed by outbound-sender) with its variables filled in.

// Limits on a template send's variables.
const (
	MaxTemplateVariables = 50
	MaxVariableRunes     = 1024
)

var (
	contentSIDRe   = regexp.MustCompile(`^HX[0-9a-fA-F]{32}$`)
	variableNameRe = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	placeholderRe  = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\s*\}\}`)
)

// templateChat loads the agent's WhatsApp chat, which templates are for.
func (c *Core) templateChat(ctx context.Context, a Agent, sessionID string) (*store.Session, error) {
	sess, err := c.ownSession(ctx, a, sessionID)
	if err != nil {
		return nil, err
	}
	if sess.Conversation.Channel != "whatsapp" {
		return nil, fmt.Errorf("%w: templates are sent on WhatsApp chats only (this chat is %s)", ErrConflict, sess.Conversation.Channel)
	}
	return sess, nil
}

// listTemplates asks outbound-sender for the templates of the chat's
// messaging entry.
func (c *Core) listTemplates(ctx context.Context, sess *store.Session) ([]*outboundv1.Template, error) {
	if c.outbound == nil {
		return nil, fmt.Errorf("%w: outbound-sender is not configured", ErrUnavailable)
	}
	res, err := c.outbound.ListTemplates(ctx, &outboundv1.ListTemplatesRequest{TenantId: sess.Tenant, EntryId: sess.EntryID})
	if status.Code(err) == codes.NotFound {
		return nil, fmt.Errorf("%w: the chat's messaging entry has no templates: %s", ErrNotFound, status.Convert(err).Message())
	}
	if err != nil {
		return nil, fmt.Errorf("%w: templates: %s", ErrUnavailable, status.Convert(err).Message())
	}
	return res.GetTemplates(), nil
}

// Templates lists the WhatsApp templates the agent may send in their chat.
func (c *Core) Templates(ctx context.Context, a Agent, sessionID string) ([]protocol.Template, error) {
	sess, err := c.templateChat(ctx, a, sessionID)
	if err != nil {
		return nil, err
	}
	list, err := c.listTemplates(ctx, sess)
	if err != nil {
		return nil, err
	}
	return TemplateViews(list), nil
}

// TemplateViews is the console's form of templates.
func TemplateViews(list []*outboundv1.Template) []protocol.Template {
	out := make([]protocol.Template, 0, len(list))
	for _, t := range list {
		v := protocol.Template{SID: t.GetSid(), FriendlyName: t.GetFriendlyName(), Language: t.GetLanguage(),
			ContentType: t.GetContentType(), Body: t.GetBody(), Variables: []protocol.TemplateVariable{}, Actions: t.GetActions()}
		for _, tv := range t.GetVariables() {
			v.Variables = append(v.Variables, protocol.TemplateVariable{Name: tv.GetName(), Default: tv.GetDefaultValue()})
		}
		out = append(out, v)
	}
	return out
}

// CheckTemplateSend validates a template send's fields before anything is
// read: the content sid, and each variable's name and value (WhatsApp
// refuses empty values and values with new lines or tabs).
func CheckTemplateSend(contentSID string, vars map[string]string) error {
	if !contentSIDRe.MatchString(contentSID) {
		return fmt.Errorf("%w: content_sid must be HX followed by 32 hex digits", ErrInvalid)
	}
	if len(vars) > MaxTemplateVariables {
		return fmt.Errorf("%w: content_variables has %d entries, at most %d are allowed", ErrInvalid, len(vars), MaxTemplateVariables)
	}
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := vars[k]
		switch {
		case !variableNameRe.MatchString(k):
			return fmt.Errorf("%w: content_variables: %q is not a variable name (letters, digits and _, at most 64)", ErrInvalid, k)
		case !utf8.ValidString(v):
			return fmt.Errorf("%w: content_variables.%s is not valid UTF-8", ErrInvalid, k)
		case strings.TrimSpace(v) == "":
			return fmt.Errorf("%w: content_variables.%s is empty", ErrInvalid, k)
		case strings.ContainsAny(v, "\n\r\t"):
			return fmt.Errorf("%w: content_variables.%s contains a new line or a tab, which WhatsApp refuses in a template", ErrInvalid, k)
		case utf8.RuneCountInString(v) > MaxVariableRunes:
			return fmt.Errorf("%w: content_variables.%s has %d characters, at most %d are allowed", ErrInvalid, k, utf8.RuneCountInString(v), MaxVariableRunes)
		}
	}
	return nil
}

// SendTemplate sends one of the connector's WhatsApp templates in the
// agent's chat, which may be outside the 24-hour window. Every variable of
// the template must be given or have a default; the transcript shows the
// text as filled in.
func (c *Core) SendTemplate(ctx context.Context, a Agent, sessionID, contentSID string, vars map[string]string, clientMsgID string) (string, error) {
	if err := validClientMsgID(clientMsgID); err != nil {
		return "", err
	}
	if err := CheckTemplateSend(contentSID, vars); err != nil {
		return "", err
	}
	sess, err := c.templateChat(ctx, a, sessionID)
	if err != nil {
		return "", err
	}
	if sess.Parked {
		return "", ErrParked
	}
	r, err := c.templateRequest(ctx, sess, contentSID, vars)
	if err != nil {
		return "", err
	}
	return c.emitRequest(ctx, a, sess, clientMsgID, r)
}

// templateRequest is the outbound request of one of the templates of the
// session's entry: its content sid, the variables given and the text
// filled in (NotFound for a content sid not of that account).
func (c *Core) templateRequest(ctx context.Context, sess *store.Session, contentSID string, vars map[string]string) (*outboundv1.OutboundMessageRequested, error) {
	list, err := c.listTemplates(ctx, sess)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(list, func(t *outboundv1.Template) bool { return t.GetSid() == contentSID })
	if i < 0 {
		return nil, fmt.Errorf("%w: content_sid %s is not a template of entry %s's WhatsApp account", ErrNotFound, contentSID, sess.EntryID)
	}
	body, err := fillTemplate(list[i], vars)
	if err != nil {
		return nil, err
	}
	r := &outboundv1.OutboundMessageRequested{Body: body, ContentSid: contentSID}
	if len(vars) > 0 {
		raw, _ := json.Marshal(vars)
		r.ContentVariables = string(raw)
	}
	return r, nil
}

// fillTemplate is the template's text with each placeholder replaced by
// its value, or its default when none was given.
func fillTemplate(t *outboundv1.Template, vars map[string]string) (string, error) {
	defaults := map[string]string{}
	for _, v := range t.GetVariables() {
		defaults[v.GetName()] = v.GetDefaultValue()
	}
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if _, ok := defaults[k]; !ok {
			return "", fmt.Errorf("%w: content_variables.%s is not a variable of template %s", ErrInvalid, k, t.GetSid())
		}
	}
	for _, v := range t.GetVariables() {
		if _, ok := vars[v.GetName()]; !ok && v.GetDefaultValue() == "" {
			return "", fmt.Errorf("%w: content_variables.%s is required: template %s has no default for it", ErrInvalid, v.GetName(), t.GetSid())
		}
	}
	return placeholderRe.ReplaceAllStringFunc(t.GetBody(), func(m string) string {
		name := placeholderRe.FindStringSubmatch(m)[1]
		if v, ok := vars[name]; ok {
			return v
		}
		return defaults[name]
	}), nil
}
