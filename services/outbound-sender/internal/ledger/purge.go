package ledger

import (
	"context"
	"regexp"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard-cc/switchboard/pkg/erasure"
	"github.com/switchboard-cc/switchboard/pkg/mongodb"
)

// Retention and erasure keep every ledger document (a req: entry is how a
// redelivery or a late duplicate is recognised, out: and sid: answer
// delivery lookups) and blank what they say of the message: the body,
// media URLs and template variables of req: entries (and, on erasure, the
// recipient). A blanked entry is marked, so a sweep does not count it
// again. They scan (FerretDB reads the whole ledger for the filter) and
// write by _id: background and admin work, never the send path.

// scanLimit bounds the entries one pass blanks; the next sweep goes on.
const scanLimit = 100_000

func requestsOf(tenant string) bson.M {
	return bson.M{"$regex": "^" + regexp.QuoteMeta("req:"+tenant+"/")}
}

var blank = bson.M{"$unset": bson.M{"body": "", "media_urls": "", "content_variables": ""}, "$set": bson.M{"blanked": true}}

// BlankBefore blanks the content of tenant's requests made before cutoff
// and returns how many it blanked.
func (s *Store) BlankBefore(ctx context.Context, tenant string, cutoff time.Time) (int64, error) {
	ids, err := mongodb.IDsMatching(ctx, s.c, bson.M{"_id": requestsOf(tenant), "requested_at": bson.M{"$lt": cutoff}, "blanked": bson.M{"$ne": true}}, scanLimit)
	if err != nil {
		return 0, err
	}
	return mongodb.WriteIDs(ctx, s.c, ids, func(id string) mongo.WriteModel {
		return mongo.NewUpdateOneModel().SetFilter(bson.M{"_id": id}).SetUpdate(blank)
	})
}

// EraseCustomer blanks the content of tenant's requests to customer
// (+E.164, either channel) and masks the recipient; it returns how many
// requests it changed.
func (s *Store) EraseCustomer(ctx context.Context, tenant, customer string) (int64, error) {
	ids, err := mongodb.IDsMatching(ctx, s.c, bson.M{"_id": requestsOf(tenant),
		"conversation.customer": bson.M{"$in": []string{customer, "whatsapp:" + customer}}}, scanLimit)
	if err != nil {
		return 0, err
	}
	update := bson.M{"$unset": blank["$unset"], "$set": bson.M{"blanked": true, "conversation.customer": erasure.Masked}}
	return mongodb.WriteIDs(ctx, s.c, ids, func(id string) mongo.WriteModel {
		return mongo.NewUpdateOneModel().SetFilter(bson.M{"_id": id}).SetUpdate(update)
	})
}
