package mongo

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fabcommons/fabcommons/fabrication"
)

// The ledger is one collection whose _id is the entry's seq, with a unique index on
// closes: inserting an entry is one single-document write, and a second writer for the
// same place in the chain, or for what was already closed, gets storage.ErrConflict.
type ledgerDoc struct {
	ID                      int64  `bson:"_id"`
	Closes                  string `bson:"closes"`
	fabrication.LedgerEntry `bson:",inline"`
}

func (d ledgerDoc) entry() fabrication.LedgerEntry {
	e := d.LedgerEntry
	e.Closes, e.CreatedAt = d.Closes, e.CreatedAt.UTC()
	if e.Holds == nil {
		e.Holds = []fabrication.HoldLine{}
	}
	return e
}

func (f Fabrication) LedgerHead(ctx context.Context) (_ fabrication.LedgerEntry, err error) {
	defer normalize(&err)
	es, err := f.ledgerFind(ctx, bson.M{}, -1, 1)
	if err != nil || len(es) == 0 {
		return fabrication.LedgerEntry{}, err
	}
	return es[0], nil
}

func (f Fabrication) AppendLedger(ctx context.Context, e fabrication.LedgerEntry) (err error) {
	defer normalize(&err)
	_, err = f.c("ledger").InsertOne(ctx, ledgerDoc{ID: e.Seq, Closes: e.Closes, LedgerEntry: e})
	return mapErr(err)
}

// AppendLedgers inserts the entries one at a time, in order (no multi-document
// transactions here, and none are needed: each insert is atomic and those before a
// refused one are a consistent chain).
func (f Fabrication) AppendLedgers(ctx context.Context, es []fabrication.LedgerEntry) (int, error) {
	for i, e := range es {
		if err := f.AppendLedger(ctx, e); err != nil {
			return i, err
		}
	}
	return len(es), nil
}

func naming(account string) bson.M {
	if account == "" {
		return bson.M{}
	}
	return bson.M{"$or": bson.A{bson.M{"from": account}, bson.M{"to": account}}}
}

func (f Fabrication) LedgerEntries(ctx context.Context, account string, after int64, limit int) (_ []fabrication.LedgerEntry, err error) {
	defer normalize(&err)
	filter := naming(account)
	filter["_id"] = bson.M{"$gt": after}
	return f.ledgerFind(ctx, filter, 1, limit)
}

func (f Fabrication) LedgerPage(ctx context.Context, account string, kinds []string, before int64, limit int) (_ []fabrication.LedgerEntry, err error) {
	defer normalize(&err)
	filter := naming(account)
	filter["_id"] = bson.M{"$lt": before}
	filter["kind"] = in(kinds)
	return f.ledgerFind(ctx, filter, -1, limit)
}

func (f Fabrication) LedgerClosing(ctx context.Context, closes string) (_ fabrication.LedgerEntry, err error) {
	defer normalize(&err)
	var d ledgerDoc
	if err := f.c("ledger").FindOne(ctx, bson.M{"closes": closes}).Decode(&d); err != nil {
		return fabrication.LedgerEntry{}, mapErr(err)
	}
	return d.entry(), nil
}

func (f Fabrication) ledgerFind(ctx context.Context, filter bson.M, order, limit int) ([]fabrication.LedgerEntry, error) {
	cur, err := f.c("ledger").Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: order}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	var docs []ledgerDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	out := make([]fabrication.LedgerEntry, len(docs))
	for i, d := range docs {
		out[i] = d.entry()
	}
	return out, nil
}
