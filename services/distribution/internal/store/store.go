// Package store keeps distribution's tasks: open ones in the KV bucket
// DISTRIBUTION_TASKS (OpenTasks), closed ones as records in MongoDB,
// keyed by tenant/task id.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	messagingv1 "github.com/switchboard-cc/switchboard/proto/gen/go/switchboard/messaging/v1"

	"github.com/switchboard-cc/switchboard/pkg/kvcas"
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
	"github.com/switchboard-cc/switchboard/pkg/subjects"
	"github.com/switchboard-cc/switchboard/services/distribution/internal/engine"
)

// Store implements engine.TaskStore and, with open tasks (OpenTasks),
// engine.OpenTaskStore.
type Store struct {
	tasks *mongo.Collection
	ended *mongo.Collection
	// open, when set: every open task, its offer included, keyed
	// <tenant>.<task>, written at the revision last seen (revs).
	open jetstream.KeyValue
	js   jetstream.JetStream
	mu   sync.Mutex
	revs map[string]uint64
}

var _ engine.TaskStore = (*Store)(nil)

// New uses db's collections "tasks" and "ended_sessions".
func New(ctx context.Context, db *mongo.Database) (*Store, error) {
	s := &Store{tasks: db.Collection("tasks"), ended: db.Collection("ended_sessions")}
	if err := mongodb.EnsureIndexes(ctx, db, mongodb.Index{Collection: "tasks", Keys: bson.D{{Key: "state", Value: 1}}, Name: "state"}); err != nil {
		return nil, err
	}
	return s, nil
}

type taskDoc struct {
	ID            string           `bson:"_id"`
	Tenant        string           `bson:"tenant"`
	TaskID        string           `bson:"task_id"`
	SessionID     string           `bson:"session_id"`
	ServiceID     string           `bson:"service_id"`
	Conversation  []byte           `bson:"conversation"`
	CustomerName  string           `bson:"customer_name,omitempty"`
	Priority      int32            `bson:"priority"`
	Skills        []string         `bson:"required_skills,omitempty"`
	QueuedAt      time.Time        `bson:"queued_at"`
	State         engine.TaskState `bson:"state"`
	AgentID       string           `bson:"agent_id,omitempty"`
	AcceptedAt    time.Time        `bson:"accepted_at,omitempty"`
	WrapUntil     time.Time        `bson:"wrap_until,omitempty"`
	ServiceName   string           `bson:"service_name,omitempty"`
	RONATimeout   time.Duration    `bson:"rona_timeout"`
	MaxParallel   int              `bson:"max_parallel"`
	AfterCall     time.Duration    `bson:"after_call_work,omitempty"`
	ServiceCodes  []string         `bson:"service_codes,omitempty"`
	SalesCodes    []string         `bson:"sales_codes,omitempty"`
	Tags          []string         `bson:"tags,omitempty"`
	FirstReply    time.Duration    `bson:"first_reply_timeout,omitempty"`
	Note          string           `bson:"note,omitempty"`
	Transfers     int              `bson:"transfers,omitempty"`
	ReplyDue      time.Time        `bson:"reply_due,omitempty"`
	Replied       bool             `bson:"replied,omitempty"`
	Overdue       bool             `bson:"reply_overdue,omitempty"`
	OfferID       string           `bson:"offer_id,omitempty"`
	OfferExpires  time.Time        `bson:"offer_expires,omitempty"`
	AcceptedOffer string           `bson:"accepted_offer,omitempty"`
	Parks         int              `bson:"parks,omitempty"`
	ParkCounts    bool             `bson:"park_counts,omitempty"`
	ParkedCounts  bool             `bson:"parked_counts,omitempty"`
	ReplyRequeue  bool             `bson:"first_reply_requeue,omitempty"`
	Preferred     string           `bson:"preferred_agent,omitempty"`
	PreferUntil   time.Time        `bson:"preferred_until,omitempty"`
	Overflowed    bool             `bson:"overflowed,omitempty"`
	OverflowAfter time.Duration    `bson:"overflow_after,omitempty"`
	OverflowKeep  []string         `bson:"overflow_skills,omitempty"`
	Trace         string           `bson:"trace,omitempty" json:",omitempty"`
	UpdatedAt     time.Time        `bson:"updated_at"`

	// Parameters: what the workflow collected (TaskRequested's).
	Parameters map[string]string `bson:"parameters,omitempty"`
	// Outbox: a closed task's closing events, in the bucket of open
	// tasks only (see engine.Task.Outbox).
	Outbox []outboxDoc `bson:"-" json:",omitempty"`
}

// outboxDoc is one stored event: Event is a marshalled anypb.Any.
type outboxDoc struct {
	Subject, MsgID string
	Event          []byte
}

func key(tenant, id string) string { return tenant + "/" + id }

// OpenTasks ensures the bucket of open tasks and keeps them there from now
// on: a replica taking a tenant over reads the tenant's keys from it (a
// read by key prefix, which MongoDB on FerretDB cannot serve from an
// index).
func (s *Store) OpenTasks(ctx context.Context, js jetstream.JetStream, replicas int) error {
	kv, err := kvcas.Bind(ctx, js, jetstream.KeyValueConfig{
		Bucket: subjects.BucketDistributionTasks, Description: "Open tasks and their offers (distribution)",
		History: 1, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
	})
	if err != nil {
		return err
	}
	s.open, s.js, s.revs = kv, js, map[string]uint64{}
	return nil
}

// migratedKey marks the bucket as holding the tasks that were open in
// MongoDB when the bucket came in (it has no tenant part, so no load
// reads it as a task).
const migratedKey = "_migrated_from_mongodb"

// MigrateOpen copies the tasks open in MongoDB into the bucket, once: the
// first start of a version that keeps open tasks in the bucket finds its
// earlier open tasks there. It returns how many it copied.
func (s *Store) MigrateOpen(ctx context.Context) (int, error) {
	if s.open == nil {
		return 0, nil
	}
	if _, err := s.open.Get(ctx, migratedKey); err == nil {
		return 0, nil
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, fmt.Errorf("read %s: %w", migratedKey, err)
	}
	open, err := s.LoadOpen(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range open {
		data, err := json.Marshal(doc(t))
		if err != nil {
			return n, fmt.Errorf("encode task %s: %w", t.ID, err)
		}
		// Create only: a key present was written since, and is newer.
		if _, err := kvcas.Put(ctx, s.open, OpenKey(t.Tenant, t.ID), data, 0); err != nil && !errors.Is(err, kvcas.ErrConflict) {
			return n, fmt.Errorf("copy open task %s/%s: %w", t.Tenant, t.ID, err)
		} else if err == nil {
			n++
		}
	}
	if _, err := s.open.Put(ctx, migratedKey, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		return n, fmt.Errorf("write %s: %w", migratedKey, err)
	}
	return n, nil
}

// OpenKey is an open task's key: <tenant>.<task>.
func OpenKey(tenant, id string) string { return tenant + "." + id }

var _ engine.OpenTaskStore = (*Store)(nil)

// SaveOpen writes the task to the open tasks at the revision last seen:
// engine.ErrConflict when another replica wrote it since. A closed task
// is written too, with the events of its closing (engine.Task.Outbox),
// until RemoveOpen.
func (s *Store) SaveOpen(ctx context.Context, t *engine.Task) error {
	if s.open == nil {
		return nil
	}
	k := OpenKey(t.Tenant, t.ID)
	// The lock guards the revisions only, not the write: the engine writes
	// different tasks at once (never one task twice at once).
	s.mu.Lock()
	rev := s.revs[k]
	s.mu.Unlock()
	d := doc(t)
	for _, ev := range t.Outbox {
		a, err := anypb.New(ev.Message)
		if err != nil {
			return fmt.Errorf("encode event %s of task %s: %w", ev.MsgID, k, err)
		}
		data, err := proto.Marshal(a)
		if err != nil {
			return fmt.Errorf("encode event %s of task %s: %w", ev.MsgID, k, err)
		}
		d.Outbox = append(d.Outbox, outboxDoc{Subject: ev.Subject, MsgID: ev.MsgID, Event: data})
	}
	data, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode task %s: %w", k, err)
	}
	next, err := kvcas.Put(ctx, s.open, k, data, rev)
	s.mu.Lock()
	defer s.mu.Unlock()
	if errors.Is(err, kvcas.ErrConflict) {
		delete(s.revs, k)
		return fmt.Errorf("store open task %s: %w", k, engine.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("store open task %s: %w", k, err)
	}
	s.revs[k] = next
	return nil
}

// RemoveOpen removes a closed task from the open tasks, at the revision
// last seen (engine.ErrConflict when another replica wrote it since).
func (s *Store) RemoveOpen(ctx context.Context, t *engine.Task) error {
	if s.open == nil {
		return nil
	}
	k := OpenKey(t.Tenant, t.ID)
	s.mu.Lock()
	var opts []jetstream.KVDeleteOpt
	if rev, seen := s.revs[k]; seen {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	s.mu.Unlock()
	err := s.open.Delete(ctx, k, opts...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if kvcas.IsConflict(err) {
		delete(s.revs, k)
		return fmt.Errorf("remove closed task %s: %w", k, engine.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("remove closed task %s: %w", k, err)
	}
	delete(s.revs, k)
	return nil
}

// LoadOpenOf reads the open tasks of the tenants match accepts, and
// remembers their revisions for the writes that follow.
func (s *Store) LoadOpenOf(ctx context.Context, match func(tenant string) bool) ([]*engine.Task, error) {
	if s.open == nil {
		return nil, errors.New("no bucket of open tasks")
	}
	all, err := kvcas.Keys(ctx, s.js, subjects.BucketDistributionTasks)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, k := range all {
		if tenant, _, ok := strings.Cut(k, "."); ok && match(tenant) {
			keys = append(keys, k)
		}
	}
	var out []*engine.Task
	for _, k := range keys {
		e, err := s.open.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // closed
		}
		if err != nil {
			return nil, fmt.Errorf("load open task %s: %w", k, err)
		}
		var d taskDoc
		if err := json.Unmarshal(e.Value(), &d); err != nil {
			return nil, fmt.Errorf("decode open task %s: %w", k, err)
		}
		t, err := d.task()
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.revs[k] = e.Revision()
		s.mu.Unlock()
		out = append(out, t)
	}
	return out, nil
}

// Save writes the task's current state: to the open tasks first (where
// a concurrent writer is caught), then, once the task has closed, to its
// record. While the bucket of open tasks keeps it, an open task is read
// from there (a replica holds its tenants' open tasks in memory), so its
// record is written once rather than at every step (queued, offered,
// accepted, parked, wrapping): one MongoDB write per task on the hot
// path instead of four or more.
func (s *Store) Save(ctx context.Context, t *engine.Task) error {
	if err := s.SaveOpen(ctx, t); err != nil {
		return err
	}
	if s.open != nil {
		if !t.State.Closed() {
			return nil
		}
		// Written once: an insert, which costs MongoDB (FerretDB) less
		// than an upsert; a record already there (a retry, or one an
		// earlier version kept up to date) is replaced.
		_, err := s.tasks.InsertOne(ctx, doc(t))
		if !mongodb.IsDuplicateKey(err) {
			return err
		}
	}
	_, err := s.tasks.ReplaceOne(ctx, bson.M{"_id": key(t.Tenant, t.ID)}, doc(t), options.Replace().SetUpsert(true))
	return err
}

func doc(t *engine.Task) taskDoc {
	conv, _ := proto.Marshal(t.Conversation) // a message that came decoded marshals
	return taskDoc{
		ID: key(t.Tenant, t.ID), Tenant: t.Tenant, TaskID: t.ID, SessionID: t.SessionID, ServiceID: t.ServiceID,
		Conversation: conv, CustomerName: t.CustomerName, Parameters: t.Parameters, Priority: t.Priority, Skills: t.RequiredSkills, QueuedAt: t.QueuedAt,
		State: t.State, AgentID: t.AgentID, AcceptedAt: t.AcceptedAt, WrapUntil: t.WrapUntil,
		ServiceName: t.Service.Name, RONATimeout: t.Service.RONATimeout, MaxParallel: t.Service.MaxParallelTasks,
		AfterCall: t.Service.AfterCallWork, ServiceCodes: t.Service.ServiceCodes, SalesCodes: t.Service.SalesCodes, Tags: t.Service.Tags,
		FirstReply: t.Service.FirstReplyTimeout, Note: t.Note, Transfers: t.Transfers, ReplyDue: t.ReplyDue, Replied: t.Replied, Overdue: t.Overdue,
		OfferID: t.OfferID, OfferExpires: t.OfferExpires, AcceptedOffer: t.AcceptedOffer,
		Parks: t.Parks, ParkCounts: t.ParkCounts, ParkedCounts: t.Service.ParkedCounts, ReplyRequeue: t.Service.FirstReplyRequeue,
		Preferred: t.PreferredAgent, PreferUntil: t.PreferredUntil, Overflowed: t.Overflowed,
		OverflowAfter: t.Service.OverflowAfter, OverflowKeep: t.Service.OverflowSkills, Trace: t.Trace,
		UpdatedAt: time.Now(),
	}
}

// Known reports whether the task has a record: it closed (or, without
// the bucket of open tasks, was ever saved).
func (s *Store) Known(ctx context.Context, tenant, taskID string) (bool, error) {
	err := s.tasks.FindOne(ctx, bson.M{"_id": key(tenant, taskID)}, options.FindOne().SetProjection(bson.M{"_id": 1})).Err()
	if mongodb.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// Get returns a task's record, nil if it has none (see Known).
func (s *Store) Get(ctx context.Context, tenant, taskID string) (*engine.Task, error) {
	var d taskDoc
	err := s.tasks.FindOne(ctx, bson.M{"_id": key(tenant, taskID)}).Decode(&d)
	if mongodb.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return d.task()
}

// LoadOpen returns tasks that have not ended. It runs once at start-up.
func (s *Store) LoadOpen(ctx context.Context) ([]*engine.Task, error) {
	cur, err := s.tasks.Find(ctx, bson.M{"state": bson.M{"$in": engine.OpenStates}})
	if err != nil {
		return nil, fmt.Errorf("find open tasks: %w", err)
	}
	var docs []taskDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read open tasks: %w", err)
	}
	out := make([]*engine.Task, 0, len(docs))
	for _, d := range docs {
		t, err := d.task()
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func (d taskDoc) task() (*engine.Task, error) {
	conv := &messagingv1.ConversationRef{}
	if err := proto.Unmarshal(d.Conversation, conv); err != nil {
		return nil, fmt.Errorf("task %s conversation: %w", d.ID, err)
	}
	var outbox []engine.Event
	for _, o := range d.Outbox {
		var a anypb.Any
		if err := proto.Unmarshal(o.Event, &a); err != nil {
			return nil, fmt.Errorf("task %s event %s: %w", d.ID, o.MsgID, err)
		}
		m, err := a.UnmarshalNew()
		if err != nil {
			return nil, fmt.Errorf("task %s event %s: %w", d.ID, o.MsgID, err)
		}
		outbox = append(outbox, engine.Event{Subject: o.Subject, MsgID: o.MsgID, Message: m})
	}
	return &engine.Task{Outbox: outbox,
		ID: d.TaskID, Tenant: d.Tenant, SessionID: d.SessionID, ServiceID: d.ServiceID,
		Conversation: conv, CustomerName: d.CustomerName, Parameters: d.Parameters, Priority: d.Priority, RequiredSkills: d.Skills, QueuedAt: d.QueuedAt,
		State: d.State, AgentID: d.AgentID, AcceptedAt: d.AcceptedAt, WrapUntil: d.WrapUntil,
		Note: d.Note, Transfers: d.Transfers, ReplyDue: d.ReplyDue, Replied: d.Replied, Overdue: d.Overdue,
		OfferID: d.OfferID, OfferExpires: d.OfferExpires, AcceptedOffer: d.AcceptedOffer,
		Parks: d.Parks, ParkCounts: d.ParkCounts,
		PreferredAgent: d.Preferred, PreferredUntil: d.PreferUntil, Overflowed: d.Overflowed, Trace: d.Trace,
		Service: engine.ServiceInfo{
			ID: d.ServiceID, Name: d.ServiceName, RONATimeout: d.RONATimeout, MaxParallelTasks: d.MaxParallel,
			AfterCallWork: d.AfterCall, ServiceCodes: d.ServiceCodes, SalesCodes: d.SalesCodes, Tags: d.Tags,
			FirstReplyTimeout: d.FirstReply, FirstReplyRequeue: d.ReplyRequeue, ParkedCounts: d.ParkedCounts,
			OverflowAfter: d.OverflowAfter, OverflowSkills: d.OverflowKeep,
		},
	}, nil
}

// MarkSessionEnded records that the session is over.
func (s *Store) MarkSessionEnded(ctx context.Context, tenant, sessionID string) error {
	_, err := s.ended.InsertOne(ctx, bson.M{"_id": key(tenant, sessionID), "at": time.Now()})
	if mongodb.IsDuplicateKey(err) {
		return nil
	}
	return err
}

// SessionEnded reports whether MarkSessionEnded was called for the session.
func (s *Store) SessionEnded(ctx context.Context, tenant, sessionID string) (bool, error) {
	err := s.ended.FindOne(ctx, bson.M{"_id": key(tenant, sessionID)}).Err()
	if mongodb.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}
