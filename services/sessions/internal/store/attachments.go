package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard-cc/switchboard/pkg/mongodb"
)

// Attachment is a file an agent attached to a reply: kept in the
// `attachments` collection by a random id (128 bits), which is also the
// capability in the URL Twilio fetches it from.
type Attachment struct {
	ID          string    `bson:"_id"`
	Tenant      string    `bson:"tenant"`
	SessionID   string    `bson:"session_id"`
	AgentID     string    `bson:"agent_id"`
	ContentType string    `bson:"content_type"`
	Filename    string    `bson:"filename,omitempty"`
	Data        []byte    `bson:"data"`
	At          time.Time `bson:"at"`
}

// NewAttachmentID is a fresh attachment id: 128 random bits.
func NewAttachmentID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "at_" + hex.EncodeToString(b[:])
}

// PutAttachment stores an attachment (an insert by _id).
func (s *Store) PutAttachment(ctx context.Context, a *Attachment) error {
	if _, err := s.attachments.InsertOne(ctx, a); err != nil {
		return fmt.Errorf("store attachment: %w", err)
	}
	return nil
}

// Attachment reads an attachment by id; ErrNotFound when there is none.
func (s *Store) Attachment(ctx context.Context, id string) (*Attachment, error) {
	var a Attachment
	err := s.attachments.FindOne(ctx, bson.M{"_id": id}).Decode(&a)
	if mongodb.IsNotFound(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read attachment: %w", err)
	}
	return &a, nil
}
