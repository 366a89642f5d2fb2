// Package store keeps the config service's records in MongoDB (or FerretDB).
//
// Every record is one document whose _id is "<tenant>/<id>" (tenants
// themselves: "<id>"), so reads and conditional writes are by _id, the only
// lookup FerretDB serves without a full scan. The resource is stored as a
// readable sub-document (its proto JSON form) next to the fields the store
// needs: tenant, id, version and private (sealed secrets, password hash).
// Unique keys that span records (Twilio SIDs and numbers across tenants,
// emails, entry assignments) live in a claims collection keyed by the
// claimed value.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	configv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/config/v1"
	"github.com/switchboard-cc/switchboard/services/config/internal/app"
)

// Collection names.
const (
	CollTenants          = "tenants"
	CollOrgUnits         = "org_units"
	CollConnectors       = "connectors"
	CollEntries          = "entries"
	CollServices         = "services"
	CollUsers            = "users"
	CollWorkflows        = "workflows"
	CollWorkflowVersions = "workflow_versions"
	CollClaims           = "claims"
)

// New returns the tables of the config service in db.
func New(db *mongo.Database) app.Tables {
	return app.Tables{
		Tenants:          NewTable(db.Collection(CollTenants), func() *configv1.Tenant { return &configv1.Tenant{} }),
		OrgUnits:         NewTable(db.Collection(CollOrgUnits), func() *configv1.OrganizationUnit { return &configv1.OrganizationUnit{} }),
		Connectors:       NewTable(db.Collection(CollConnectors), func() *configv1.ProviderConnector { return &configv1.ProviderConnector{} }),
		Entries:          NewTable(db.Collection(CollEntries), func() *configv1.MessagingEntry { return &configv1.MessagingEntry{} }),
		Services:         NewTable(db.Collection(CollServices), func() *configv1.Service { return &configv1.Service{} }),
		Users:            NewTable(db.Collection(CollUsers), func() *configv1.User { return &configv1.User{} }),
		Workflows:        NewTable(db.Collection(CollWorkflows), func() *configv1.Workflow { return &configv1.Workflow{} }),
		WorkflowVersions: NewTable(db.Collection(CollWorkflowVersions), func() *configv1.Workflow { return &configv1.Workflow{} }),
		Claims:           &Claims{c: db.Collection(CollClaims)},
	}
}

// Table stores records of one proto type.
type Table[M proto.Message] struct {
	c      *mongo.Collection
	newMsg func() M
}

var _ app.Table[*configv1.Tenant] = (*Table[*configv1.Tenant])(nil)

// NewTable stores M in c.
func NewTable[M proto.Message](c *mongo.Collection, newMsg func() M) *Table[M] {
	return &Table[M]{c: c, newMsg: newMsg}
}

type doc struct {
	ID      string            `bson:"_id"`
	Tenant  string            `bson:"tenant"`
	RecID   string            `bson:"id"`
	Version int64             `bson:"version"`
	Data    bson.Raw          `bson:"data"`
	Private map[string]string `bson:"private,omitempty"`
}

func docID(tenant, id string) string {
	if tenant == "" {
		return id
	}
	return tenant + "/" + id
}

var jsonOut = protojson.MarshalOptions{UseProtoNames: true}
var jsonIn = protojson.UnmarshalOptions{DiscardUnknown: true}

func (t *Table[M]) toDoc(r *app.Record[M]) (*doc, error) {
	js, err := jsonOut.Marshal(r.Msg)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", r.Msg.ProtoReflect().Descriptor().Name(), err)
	}
	var data bson.Raw
	if err := bson.UnmarshalExtJSON(js, false, &data); err != nil {
		return nil, fmt.Errorf("encode %s as bson: %w", r.Msg.ProtoReflect().Descriptor().Name(), err)
	}
	return &doc{ID: docID(r.Tenant, r.ID), Tenant: r.Tenant, RecID: r.ID, Version: r.Version, Data: data, Private: r.Private}, nil
}

func (t *Table[M]) fromDoc(d *doc) (*app.Record[M], error) {
	js, err := bson.MarshalExtJSON(d.Data, false, false)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", d.ID, err)
	}
	m := t.newMsg()
	if err := jsonIn.Unmarshal(js, m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", d.ID, err)
	}
	return &app.Record[M]{Tenant: d.Tenant, ID: d.RecID, Version: d.Version, Msg: m, Private: d.Private}, nil
}

// Get reads one record by _id.
func (t *Table[M]) Get(ctx context.Context, tenant, id string) (*app.Record[M], error) {
	var d doc
	if err := t.c.FindOne(ctx, bson.M{"_id": docID(tenant, id)}).Decode(&d); err != nil {
		if mongodb.IsNotFound(err) {
			return nil, app.ErrNotFound
		}
		return nil, fmt.Errorf("get %s %s: %w", t.c.Name(), docID(tenant, id), err)
	}
	return t.fromDoc(&d)
}

// Insert writes a new record.
func (t *Table[M]) Insert(ctx context.Context, r *app.Record[M]) error {
	d, err := t.toDoc(r)
	if err != nil {
		return err
	}
	if _, err := t.c.InsertOne(ctx, d); err != nil {
		if mongodb.IsDuplicateKey(err) {
			return app.ErrDuplicate
		}
		return fmt.Errorf("insert %s %s: %w", t.c.Name(), d.ID, err)
	}
	return nil
}

// Replace swaps the record at version prev for r.
func (t *Table[M]) Replace(ctx context.Context, r *app.Record[M], prev int64) error {
	d, err := t.toDoc(r)
	if err != nil {
		return err
	}
	res, err := t.c.ReplaceOne(ctx, bson.M{"_id": d.ID, "version": prev}, d)
	if err != nil {
		return fmt.Errorf("replace %s %s: %w", t.c.Name(), d.ID, err)
	}
	if res.MatchedCount == 0 {
		return app.ErrVersionMismatch
	}
	return nil
}

// Delete removes a record, at version when non-zero.
func (t *Table[M]) Delete(ctx context.Context, tenant, id string, version int64) error {
	f := bson.M{"_id": docID(tenant, id)}
	if version != 0 {
		f["version"] = version
	}
	res, err := t.c.DeleteOne(ctx, f)
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", t.c.Name(), docID(tenant, id), err)
	}
	if res.DeletedCount == 1 {
		return nil
	}
	if _, err := t.Get(ctx, tenant, id); err != nil {
		return err
	}
	return app.ErrVersionMismatch
}

// idCeiling sorts after every id character ([a-z0-9_@.-]).
const idCeiling = "~"

// List returns records of tenant in _id order. The _id range keeps the scan
// to the tenant's records on MongoDB.
func (t *Table[M]) List(ctx context.Context, tenant string, q app.Query) ([]*app.Record[M], error) {
	base := ""
	if tenant != "" {
		base = tenant + "/"
	}
	rng := bson.M{"$lt": base + q.Prefix + idCeiling}
	if q.After != "" {
		rng["$gt"] = base + q.After
	} else {
		rng["$gte"] = base + q.Prefix
	}
	f := bson.D{{Key: "_id", Value: rng}}
	if tenant != "" {
		f = append(f, bson.E{Key: "tenant", Value: tenant})
	}
	for k, v := range q.Eq {
		f = append(f, bson.E{Key: "data." + k, Value: v})
	}
	for k, v := range q.In {
		f = append(f, bson.E{Key: "data." + k, Value: bson.M{"$in": v}})
	}
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}})
	if q.Limit > 0 {
		opts.SetLimit(int64(q.Limit))
	}
	cur, err := t.c.Find(ctx, f, opts)
	if err != nil {
		return nil, fmt.Errorf("list %s of %q: %w", t.c.Name(), tenant, err)
	}
	var docs []doc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list %s of %q: %w", t.c.Name(), tenant, err)
	}
	out := make([]*app.Record[M], 0, len(docs))
	for i := range docs {
		r, err := t.fromDoc(&docs[i])
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Claims stores unique-key claims with the claimed key as _id.
type Claims struct {
	c *mongo.Collection
}

var _ app.Claims = (*Claims)(nil)

type claimDoc struct {
	Key    string    `bson:"_id"`
	Tenant string    `bson:"tenant"`
	Owner  string    `bson:"owner"`
	At     time.Time `bson:"at"`
}

// Insert claims a free key.
func (s *Claims) Insert(ctx context.Context, c app.Claim) error {
	_, err := s.c.InsertOne(ctx, claimDoc{Key: c.Key, Tenant: c.Tenant, Owner: c.Owner, At: c.At.UTC().Truncate(time.Millisecond)})
	if mongodb.IsDuplicateKey(err) {
		return app.ErrDuplicate
	}
	if err != nil {
		return fmt.Errorf("insert claim %q: %w", c.Key, err)
	}
	return nil
}

// Get reads a claim.
func (s *Claims) Get(ctx context.Context, key string) (app.Claim, error) {
	var d claimDoc
	if err := s.c.FindOne(ctx, bson.M{"_id": key}).Decode(&d); err != nil {
		if mongodb.IsNotFound(err) {
			return app.Claim{}, app.ErrNotFound
		}
		return app.Claim{}, fmt.Errorf("get claim %q: %w", key, err)
	}
	return app.Claim{Key: d.Key, Tenant: d.Tenant, Owner: d.Owner, At: d.At}, nil
}

// Replace hands a claim over to a new owner if it is still old.
func (s *Claims) Replace(ctx context.Context, old, c app.Claim) error {
	res, err := s.c.ReplaceOne(ctx,
		bson.M{"_id": old.Key, "tenant": old.Tenant, "owner": old.Owner, "at": old.At},
		claimDoc{Key: c.Key, Tenant: c.Tenant, Owner: c.Owner, At: c.At.UTC().Truncate(time.Millisecond)})
	if err != nil {
		return fmt.Errorf("replace claim %q: %w", old.Key, err)
	}
	if res.MatchedCount == 0 {
		return app.ErrVersionMismatch
	}
	return nil
}

// Release frees a claim held by tenant/owner; a claim held by anyone else,
// or no claim, is left alone.
func (s *Claims) Release(ctx context.Context, key, tenant, owner string) error {
	if _, err := s.c.DeleteOne(ctx, bson.M{"_id": key, "tenant": tenant, "owner": owner}); err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return fmt.Errorf("release claim %q: %w", key, err)
	}
	return nil
}
