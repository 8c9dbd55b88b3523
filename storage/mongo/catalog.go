package mongo

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/catalog/mesh"
	"github.com/fabcommons/fabcommons/storage"
)

// Catalog implements catalog.Store.
type Catalog struct{ db *DB }

var _ catalog.Store = Catalog{}

// Catalog returns the catalog store of db.
func (db *DB) Catalog() Catalog { return Catalog{db} }

func (c Catalog) designs() *mongo.Collection  { return c.db.db.Collection("designs") }
func (c Catalog) versions() *mongo.Collection { return c.db.db.Collection("versions") }

// designDoc is a design as stored: with the parents' ids and the search terms
// alongside, for the indexes.
type designDoc struct {
	ID            string              `bson:"_id"`
	Slug          string              `bson:"slug"`
	OwnerID       string              `bson:"owner_id"`
	Owner         string              `bson:"owner"`
	Licensor      string              `bson:"licensor,omitempty"`
	Title         string              `bson:"title"`
	Summary       string              `bson:"summary"`
	Tags          []string            `bson:"tags"`
	License       string              `bson:"license"`
	Hidden        bool                `bson:"hidden"`
	Featured      bool                `bson:"featured"`
	Parents       []catalog.ParentRef `bson:"parents"`
	ParentIDs     []string            `bson:"parent_ids"`
	Terms         []string            `bson:"terms"`
	LatestVersion int                 `bson:"latest_version"`
	Counters      catalog.Counters    `bson:"counters"`
	CreatedAt     time.Time           `bson:"created_at"`
	UpdatedAt     time.Time           `bson:"updated_at"`
	Origin        *catalog.Origin     `bson:"origin,omitempty"`
}

func toDesignDoc(d catalog.Design) designDoc {
	doc := designDoc{
		ID: d.ID, Slug: d.Slug, OwnerID: d.OwnerID, Owner: d.Owner, Licensor: d.Licensor, Title: d.Title, Summary: d.Summary, Tags: d.Tags,
		License: d.License, Hidden: d.Hidden, Featured: d.Featured, Parents: d.Parents, ParentIDs: []string{},
		Terms: catalog.Terms(d), LatestVersion: d.LatestVersion, Counters: d.Counters, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
		Origin: d.Origin,
	}
	for _, p := range d.Parents {
		if p.DesignID == "" {
			continue // a parent on another hub this hub has no copy of
		}
		doc.ParentIDs = append(doc.ParentIDs, p.DesignID)
	}
	return doc
}

func (doc designDoc) design() catalog.Design {
	d := catalog.Design{
		ID: doc.ID, Slug: doc.Slug, OwnerID: doc.OwnerID, Owner: doc.Owner, Licensor: doc.Licensor, Title: doc.Title, Summary: doc.Summary,
		Tags: doc.Tags, License: doc.License, Hidden: doc.Hidden, Featured: doc.Featured, Parents: doc.Parents,
		LatestVersion: doc.LatestVersion, Counters: doc.Counters, CreatedAt: doc.CreatedAt.UTC(), UpdatedAt: doc.UpdatedAt.UTC(),
		Origin: doc.Origin,
	}
	if d.Tags == nil {
		d.Tags = []string{}
	}
	if d.Parents == nil {
		d.Parents = []catalog.ParentRef{}
	}
	return d
}

type versionDoc struct {
	ID              string `bson:"_id"` // design id ":" number: one document per version, ever
	catalog.Version `bson:",inline"`
}

func versionID(designID string, n int) string { return fmt.Sprintf("%s:%d", designID, n) }

// CreateDesign writes the first version, then the design. Without transactions a crash
// between the two leaves a version no design points to; writing it as an upsert keeps
// retries under another slug (same design id) from colliding with it.
func (c Catalog) CreateDesign(ctx context.Context, d catalog.Design, v catalog.Version) (err error) {
	defer normalize(&err)
	_, err = c.versions().ReplaceOne(ctx, bson.M{"_id": versionID(v.DesignID, v.Number)},
		versionDoc{ID: versionID(v.DesignID, v.Number), Version: v}, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("insert version: %w", mapErr(err))
	}
	if _, err := c.designs().InsertOne(ctx, toDesignDoc(d)); err != nil {
		return fmt.Errorf("insert design %s: %w", d.Slug, mapErr(err))
	}
	return nil
}

// AddVersion inserts the version — its _id makes the number unique, so that insert is
// the commit — and then moves the design's latest-version pointer forward. Moving the
// pointer is idempotent ($lt guard), so a writer that loses the insert can move it too:
// a winner that crashed between the two steps is finished by the next writer, who is
// then told to try again with the next number.
func (c Catalog) AddVersion(ctx context.Context, v catalog.Version, d catalog.Design) (err error) {
	defer normalize(&err)
	_, err = c.versions().InsertOne(ctx, versionDoc{ID: versionID(v.DesignID, v.Number), Version: v})
	if mongo.IsDuplicateKeyError(err) {
		if err := c.movePointer(ctx, v.DesignID, v.Number, nil); err != nil {
			return err
		}
		return fmt.Errorf("version %d exists: %w", v.Number, storage.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert version %d: %w", v.Number, err)
	}
	moved, err := c.movePointerTo(ctx, v.DesignID, v.Number, bson.M{"license": d.License, "updated_at": d.UpdatedAt})
	if err != nil || moved {
		return err
	}
	// Not moved: the design is past this number already (a remote design's older
	// version, heard late), or the pointer is at it (a losing writer rolled it forward).
	if cur, err := c.DesignByID(ctx, v.DesignID); err == nil && cur.LatestVersion > v.Number {
		if _, err := c.versions().DeleteOne(ctx, bson.M{"_id": versionID(v.DesignID, v.Number)}); err != nil {
			return fmt.Errorf("withdraw version %d: %w", v.Number, err)
		}
		return fmt.Errorf("version %d is older than the latest, %d: %w", v.Number, cur.LatestVersion, storage.ErrConflict)
	}
	return nil
}

func (c Catalog) movePointer(ctx context.Context, designID string, n int, extra bson.M) error {
	_, err := c.movePointerTo(ctx, designID, n, extra)
	return err
}

// movePointerTo sets the design's latest version to n when it is lower, and says
// whether it was.
func (c Catalog) movePointerTo(ctx context.Context, designID string, n int, extra bson.M) (bool, error) {
	set := bson.M{"latest_version": n}
	for k, v := range extra {
		set[k] = v
	}
	if extra == nil {
		// A roll-forward by a losing writer: copy the committed version's license.
		if v, err := c.Version(ctx, designID, n); err == nil {
			set["license"], set["updated_at"] = v.License, v.CreatedAt
		}
	}
	res, err := c.designs().UpdateOne(ctx, bson.M{"_id": designID, "latest_version": bson.M{"$lt": n}}, bson.M{"$set": set})
	if err != nil {
		return false, fmt.Errorf("move latest version: %w", err)
	}
	return res.MatchedCount == 1, nil
}

func (c Catalog) findDesign(ctx context.Context, filter bson.M, what string) (catalog.Design, error) {
	var doc designDoc
	if err := c.designs().FindOne(ctx, filter).Decode(&doc); err != nil {
		return catalog.Design{}, fmt.Errorf("design %s: %w", what, mapErr(err))
	}
	return doc.design(), nil
}

func (c Catalog) DesignBySlug(ctx context.Context, slug string) (_ catalog.Design, err error) {
	defer normalize(&err)
	return c.findDesign(ctx, bson.M{"slug": slug}, slug)
}

func (c Catalog) DesignByID(ctx context.Context, id string) (_ catalog.Design, err error) {
	defer normalize(&err)
	return c.findDesign(ctx, bson.M{"_id": id}, id)
}

func (c Catalog) Version(ctx context.Context, designID string, number int) (_ catalog.Version, err error) {
	defer normalize(&err)
	var doc versionDoc
	if err := c.versions().FindOne(ctx, bson.M{"_id": versionID(designID, number)}).Decode(&doc); err != nil {
		return catalog.Version{}, fmt.Errorf("version %d: %w", number, mapErr(err))
	}
	return doc.version(), nil
}

func (d versionDoc) version() catalog.Version {
	v := d.Version
	v.CreatedAt = v.CreatedAt.UTC()
	if v.BOM == nil {
		v.BOM = []catalog.BOMLine{}
	}
	return v
}

func (c Catalog) Versions(ctx context.Context, designID string) (_ []catalog.Version, err error) {
	defer normalize(&err)
	cur, err := c.versions().Find(ctx, bson.M{"design_id": designID},
		options.Find().SetSort(bson.D{{Key: "number", Value: -1}}).SetProjection(bson.M{"files": 0, "bom": 0}))
	if err != nil {
		return nil, err
	}
	var docs []versionDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	versions := make([]catalog.Version, 0, len(docs))
	for _, d := range docs {
		d.Version.CreatedAt = d.Version.CreatedAt.UTC()
		versions = append(versions, d.Version)
	}
	return versions, nil
}

func (c Catalog) findDesigns(ctx context.Context, filter bson.M, opts *options.FindOptionsBuilder) ([]catalog.Design, error) {
	cur, err := c.designs().Find(ctx, filter, opts)
	if err != nil {
		return nil, err
	}
	var docs []designDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	designs := make([]catalog.Design, 0, len(docs))
	for _, d := range docs {
		designs = append(designs, d.design())
	}
	return designs, nil
}

func (c Catalog) Children(ctx context.Context, designID string) (_ []catalog.Design, err error) {
	defer normalize(&err)
	return c.findDesigns(ctx, bson.M{"parent_ids": designID},
		options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}))
}

// Search matches each query word as a prefix of one of the design's lower-cased terms
// (an anchored regex on the multikey terms index): the same behaviour as the SQLite
// store's FTS5 prefix queries, in what FerretDB and MongoDB both support.
func (c Catalog) DesignByOrigin(ctx context.Context, object string) (_ catalog.Design, err error) {
	defer normalize(&err)
	if object == "" {
		return catalog.Design{}, fmt.Errorf("design of no origin: %w", storage.ErrNotFound)
	}
	return c.findDesign(ctx, bson.M{"origin.object": object}, "design from "+object)
}

func (c Catalog) Search(ctx context.Context, q catalog.Query) (_ catalog.Page, err error) {
	defer normalize(&err)
	and := bson.A{bson.M{"hidden": false}}
	if q.Hidden {
		and = bson.A{bson.M{}}
	}
	for _, w := range catalog.QueryWords(q.Text) {
		and = append(and, bson.M{"terms": bson.M{"$regex": "^" + regexp.QuoteMeta(w)}})
	}
	if q.Tag != "" {
		and = append(and, bson.M{"tags": q.Tag})
	}
	if q.License != "" {
		and = append(and, bson.M{"license": q.License})
	}
	if q.Owner != "" {
		and = append(and, bson.M{"owner": q.Owner})
	}
	if q.Featured {
		and = append(and, bson.M{"featured": true})
	}
	if q.Origin != "" {
		and = append(and, bson.M{"$or": bson.A{bson.M{"origin.hub": q.Origin},
			bson.M{"origin.hub": bson.M{"$regex": "^" + regexp.QuoteMeta(q.Origin) + ":"}}}})
	}
	if q.Cursor != "" {
		ts, id, err := catalog.DecodeCursor(q.Cursor)
		if err != nil {
			return catalog.Page{}, err
		}
		t := time.Unix(0, ts).UTC()
		and = append(and, bson.M{"$or": bson.A{
			bson.M{"created_at": bson.M{"$lt": t}},
			bson.M{"created_at": t, "_id": bson.M{"$lt": id}},
		}})
	}
	designs, err := c.findDesigns(ctx, bson.M{"$and": and}, options.Find().
		SetSort(bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(int64(q.Limit+1)))
	if err != nil {
		return catalog.Page{}, fmt.Errorf("search designs: %w", err)
	}
	page := catalog.Page{Designs: designs}
	if len(designs) > q.Limit {
		page.Designs = designs[:q.Limit]
		last := page.Designs[q.Limit-1]
		page.NextCursor = catalog.EncodeCursor(last.CreatedAt, last.ID)
	}
	return page, nil
}

func (c Catalog) update(ctx context.Context, designID string, set bson.M) error {
	res, err := c.designs().UpdateByID(ctx, designID, bson.M{"$set": set})
	if err != nil {
		return err
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("design %s: %w", designID, storage.ErrNotFound)
	}
	return nil
}

func (c Catalog) SetHidden(ctx context.Context, designID string, hidden bool, at time.Time) (err error) {
	defer normalize(&err)
	return c.update(ctx, designID, bson.M{"hidden": hidden, "updated_at": at})
}

func (c Catalog) SetText(ctx context.Context, d catalog.Design) (err error) {
	defer normalize(&err)
	return c.update(ctx, d.ID, bson.M{"title": d.Title, "summary": d.Summary, "tags": d.Tags, "licensor": d.Licensor,
		"terms": catalog.Terms(d), "updated_at": d.UpdatedAt})
}

func (c Catalog) SetFeatured(ctx context.Context, designID string, featured bool) (err error) {
	defer normalize(&err)
	return c.update(ctx, designID, bson.M{"featured": featured})
}

func (c Catalog) SetCounters(ctx context.Context, designID string, counters catalog.Counters) (err error) {
	defer normalize(&err)
	return c.update(ctx, designID, bson.M{"counters": counters})
}

// SetMeshReports reads the version and writes its files back whole: reports are
// deterministic, so two writers at once write the same thing (and FerretDB v1 has no
// array filters to set one element in place).
func (c Catalog) SetMeshReports(ctx context.Context, designID string, number int, reports map[string]mesh.Report) error {
	return c.rewriteFiles(ctx, designID, number, func(f *catalog.File) {
		if r, ok := reports[f.Path]; ok {
			f.Mesh = &r
		}
	})
}

func (c Catalog) SetFetched(ctx context.Context, designID string, number int, paths []string) error {
	return c.rewriteFiles(ctx, designID, number, func(f *catalog.File) {
		if slices.Contains(paths, f.Path) {
			f.Fetched = true
		}
	})
}

// rewriteFiles edits each file of a version with edit and writes them back whole.
func (c Catalog) rewriteFiles(ctx context.Context, designID string, number int, edit func(*catalog.File)) (err error) {
	defer normalize(&err)
	v, err := c.Version(ctx, designID, number)
	if err != nil {
		return err
	}
	for i := range v.Files {
		edit(&v.Files[i])
	}
	res, err := c.versions().UpdateOne(ctx, bson.M{"_id": versionID(designID, number)}, bson.M{"$set": bson.M{"files": v.Files}})
	if err != nil {
		return err
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("version %d of %s: %w", number, designID, storage.ErrNotFound)
	}
	return nil
}

func (c Catalog) ReferencedBlobs(ctx context.Context, fn func(string) error) (err error) {
	defer normalize(&err)
	cur, err := c.versions().Find(ctx, bson.M{}, options.Find().SetProjection(bson.M{"files.sha256": 1}))
	if err != nil {
		return err
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var doc struct {
			Files []struct {
				SHA256 string `bson:"sha256"`
			} `bson:"files"`
		}
		if err := cur.Decode(&doc); err != nil {
			return err
		}
		for _, f := range doc.Files {
			if err := fn(f.SHA256); err != nil {
				return err
			}
		}
	}
	if err := cur.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return c.photoBlobs(ctx, fn)
}

// photoBlobs calls fn with the key of every photo of a make (fabrication.Job.Photos).
func (c Catalog) photoBlobs(ctx context.Context, fn func(string) error) error {
	cur, err := c.db.db.Collection("jobs").Find(ctx, bson.M{"photos": bson.M{"$exists": true}}, options.Find().SetProjection(bson.M{"photos": 1}))
	if err != nil {
		return err
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var doc struct {
			Photos []struct {
				Key string `bson:"key"`
			} `bson:"photos"`
		}
		if err := cur.Decode(&doc); err != nil {
			return err
		}
		for _, p := range doc.Photos {
			if err := fn(p.Key); err != nil {
				return err
			}
		}
	}
	if err := cur.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func (c Catalog) flags() *mongo.Collection { return c.db.db.Collection("design_flags") }

// flagDoc is one report, keyed by design and person so a repeat is a duplicate key.
type flagDoc struct {
	ID        string    `bson:"_id"`
	DesignID  string    `bson:"design_id"`
	UserID    string    `bson:"user_id"`
	Handle    string    `bson:"handle"`
	Reason    string    `bson:"reason"`
	CreatedAt time.Time `bson:"created_at"`
}

func (c Catalog) AddFlag(ctx context.Context, f catalog.Flag) (err error) {
	defer normalize(&err)
	_, err = c.flags().InsertOne(ctx, toFlagDoc(f))
	return mapErr(err)
}

func toFlagDoc(f catalog.Flag) flagDoc {
	return flagDoc{ID: f.DesignID + "/" + f.UserID, DesignID: f.DesignID, UserID: f.UserID, Handle: f.Handle, Reason: f.Reason, CreatedAt: f.CreatedAt.UTC()}
}

func (d flagDoc) flag() catalog.Flag {
	return catalog.Flag{DesignID: d.DesignID, UserID: d.UserID, Handle: d.Handle, Reason: d.Reason, CreatedAt: d.CreatedAt.UTC()}
}

func (c Catalog) Flags(ctx context.Context, limit int) (_ []catalog.Flag, err error) {
	defer normalize(&err)
	cur, err := c.flags().Find(ctx, bson.M{}, options.Find().SetSort(bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	var docs []flagDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	out := make([]catalog.Flag, 0, len(docs))
	for _, d := range docs {
		out = append(out, d.flag())
	}
	return out, nil
}

func (c Catalog) ClearFlags(ctx context.Context, designID string) (err error) {
	defer normalize(&err)
	_, err = c.flags().DeleteMany(ctx, bson.M{"design_id": designID})
	return err
}

// Reindex sets every design's search terms again from its fields (fabhub check -repair).
func (c Catalog) Reindex(ctx context.Context) (n int, err error) {
	defer normalize(&err)
	err = dumpAll(ctx, c.db, "designs", byID, func(d designDoc) error {
		if _, err := c.designs().UpdateByID(ctx, d.ID, bson.M{"$set": bson.M{"terms": catalog.Terms(d.design())}}); err != nil {
			return err
		}
		n++
		return nil
	})
	return n, err
}
