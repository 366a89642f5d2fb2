// Package mongodb connects to MongoDB (or anything speaking its wire
// protocol) and bootstraps indexes. Services keep hot-path reads and writes
// by _id with natural keys, and never rely on transactions or change streams.
package mongodb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
)

// Connect dials uri with majority writes and checks the server answers.
func Connect(ctx context.Context, uri string) (*mongo.Client, error) {
	opts := options.Client().ApplyURI(uri).
		SetWriteConcern(writeconcern.Majority()).
		SetServerSelectionTimeout(10 * time.Second).
		SetConnectTimeout(5 * time.Second)
	c, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("mongo connect: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := c.Ping(pctx, nil); err != nil {
		_ = c.Disconnect(context.Background())
		return nil, fmt.Errorf("mongo ping %s: %w", redact(uri), err)
	}
	return c, nil
}

// redact drops credentials from a connection string for error messages.
func redact(uri string) string {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return uri
	}
	if _, host, ok := strings.Cut(rest, "@"); ok {
		return scheme + "://***@" + host
	}
	return uri
}

// Index is one index to bootstrap.
type Index struct {
	Collection string
	Keys       bson.D
	Unique     bool
	Name       string
}

// EnsureIndexes creates the indexes (creating an existing one is a no-op).
func EnsureIndexes(ctx context.Context, db *mongo.Database, idx ...Index) error {
	for _, ix := range idx {
		opts := options.Index().SetUnique(ix.Unique)
		if ix.Name != "" {
			opts.SetName(ix.Name)
		}
		if _, err := db.Collection(ix.Collection).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.Keys, Options: opts}); err != nil {
			return fmt.Errorf("create index %s on %s: %w", ix.Name, ix.Collection, err)
		}
	}
	return nil
}

// IsDuplicateKey reports a unique-index violation (E11000).
func IsDuplicateKey(err error) bool { return mongo.IsDuplicateKeyError(err) }

// IsNotFound reports that a single-document read found nothing.
func IsNotFound(err error) bool { return errors.Is(err, mongo.ErrNoDocuments) }
