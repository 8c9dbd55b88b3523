package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/catalog/mesh"
	"github.com/fabcommons/fabcommons/storage"
)

// Catalog implements catalog.Store.
type Catalog struct{ db *DB }

var _ catalog.Store = Catalog{}

// Catalog returns the catalog store of db.
func (db *DB) Catalog() Catalog { return Catalog{db} }

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs are marshalled
	}
	return string(b)
}

func (c Catalog) CreateDesign(ctx context.Context, d catalog.Design, v catalog.Version) error {
	tx, err := c.db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := insertDesign(ctx, tx, d); err != nil {
		return err
	}
	if err := insertVersion(ctx, tx, v); err != nil {
		return err
	}
	return mapErr(tx.Commit())
}

func insertVersion(ctx context.Context, tx *sql.Tx, v catalog.Version) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO versions(design_id, number, message, license, files, bom, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		v.DesignID, v.Number, v.Message, v.License, mustJSON(v.Files), mustJSON(v.BOM), v.CreatedBy, unixNano(v.CreatedAt))
	if err != nil {
		return fmt.Errorf("insert version %d: %w", v.Number, mapErr(err))
	}
	return nil
}

func (c Catalog) AddVersion(ctx context.Context, v catalog.Version, d catalog.Design) error {
	tx, err := c.db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE designs SET latest_version = ?, license = ?, updated_at = ? WHERE id = ? AND latest_version < ?`,
		v.Number, d.License, unixNano(d.UpdatedAt), v.DesignID, v.Number)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("version %d: the design's latest version moved: %w", v.Number, storage.ErrConflict)
	}
	if err := insertVersion(ctx, tx, v); err != nil {
		return err
	}
	return mapErr(tx.Commit())
}

const designColumns = `id, slug, owner_id, owner, title, summary, tags, license, hidden, featured, parents, latest_version, counters, created_at, updated_at, licensor, origin_hub, origin_object, origin_url`

func scanDesign(row scanner) (catalog.Design, error) {
	var d catalog.Design
	var tags, parents, counters string
	var created, updated int64
	var o catalog.Origin
	err := row.Scan(&d.ID, &d.Slug, &d.OwnerID, &d.Owner, &d.Title, &d.Summary, &tags, &d.License, &d.Hidden, &d.Featured,
		&parents, &d.LatestVersion, &counters, &created, &updated, &d.Licensor, &o.Hub, &o.Object, &o.URL)
	if err != nil {
		return catalog.Design{}, mapErr(err)
	}
	if o.Object != "" {
		d.Origin = &o
	}
	d.CreatedAt, d.UpdatedAt = fromNano(created), fromNano(updated)
	if err := json.Unmarshal([]byte(tags), &d.Tags); err != nil {
		return catalog.Design{}, err
	}
	if err := json.Unmarshal([]byte(parents), &d.Parents); err != nil {
		return catalog.Design{}, err
	}
	return d, json.Unmarshal([]byte(counters), &d.Counters)
}

func (c Catalog) DesignBySlug(ctx context.Context, slug string) (catalog.Design, error) {
	d, err := scanDesign(c.db.read.QueryRowContext(ctx, `SELECT `+designColumns+` FROM designs WHERE slug = ?`, slug))
	if err != nil {
		return d, fmt.Errorf("design %s: %w", slug, err)
	}
	return d, nil
}

func (c Catalog) DesignByID(ctx context.Context, id string) (catalog.Design, error) {
	d, err := scanDesign(c.db.read.QueryRowContext(ctx, `SELECT `+designColumns+` FROM designs WHERE id = ?`, id))
	if err != nil {
		return d, fmt.Errorf("design %s: %w", id, err)
	}
	return d, nil
}

const versionColumns = `design_id, number, message, license, files, bom, created_by, created_at`

func scanVersion(row scanner) (catalog.Version, error) {
	var v catalog.Version
	var files, bom string
	var created int64
	if err := row.Scan(&v.DesignID, &v.Number, &v.Message, &v.License, &files, &bom, &v.CreatedBy, &created); err != nil {
		return catalog.Version{}, mapErr(err)
	}
	v.CreatedAt = fromNano(created)
	if err := json.Unmarshal([]byte(files), &v.Files); err != nil {
		return catalog.Version{}, err
	}
	return v, json.Unmarshal([]byte(bom), &v.BOM)
}

func (c Catalog) Version(ctx context.Context, designID string, number int) (catalog.Version, error) {
	v, err := scanVersion(c.db.read.QueryRowContext(ctx, `SELECT `+versionColumns+` FROM versions WHERE design_id = ? AND number = ?`, designID, number))
	if err != nil {
		return catalog.Version{}, fmt.Errorf("version %d: %w", number, err)
	}
	return v, nil
}

func (c Catalog) Versions(ctx context.Context, designID string) ([]catalog.Version, error) {
	rows, err := c.db.read.QueryContext(ctx, `
		SELECT design_id, number, message, license, created_by, created_at FROM versions WHERE design_id = ? ORDER BY number DESC`, designID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	versions := []catalog.Version{}
	for rows.Next() {
		var v catalog.Version
		var created int64
		if err := rows.Scan(&v.DesignID, &v.Number, &v.Message, &v.License, &v.CreatedBy, &created); err != nil {
			return nil, err
		}
		v.CreatedAt = fromNano(created)
		versions = append(versions, v)
	}
	return versions, rows.Err()
}

func (c Catalog) queryDesigns(ctx context.Context, query string, args ...any) ([]catalog.Design, error) {
	rows, err := c.db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	designs := []catalog.Design{}
	for rows.Next() {
		d, err := scanDesign(rows)
		if err != nil {
			return nil, err
		}
		designs = append(designs, d)
	}
	return designs, rows.Err()
}

func (c Catalog) Children(ctx context.Context, designID string) ([]catalog.Design, error) {
	return c.queryDesigns(ctx, `SELECT `+designColumns+` FROM designs
		WHERE id IN (SELECT child_id FROM design_parents WHERE parent_id = ?) ORDER BY created_at, id`, designID)
}

func (c Catalog) DesignByOrigin(ctx context.Context, object string) (catalog.Design, error) {
	if object == "" {
		return catalog.Design{}, fmt.Errorf("design of no origin: %w", storage.ErrNotFound)
	}
	d, err := scanDesign(c.db.read.QueryRowContext(ctx, `SELECT `+designColumns+` FROM designs WHERE origin_object = ?`, object))
	if err != nil {
		return d, fmt.Errorf("design from %s: %w", object, err)
	}
	return d, nil
}

func (c Catalog) Search(ctx context.Context, q catalog.Query) (catalog.Page, error) {
	where := []string{"d.hidden = 0"}
	if q.Hidden {
		where = []string{"1 = 1"}
	}
	var args []any
	if words := catalog.QueryWords(q.Text); len(words) > 0 {
		terms := make([]string, len(words))
		for i, w := range words {
			terms[i] = `"` + w + `"*` // words are letters and digits only: safe to quote
		}
		where = append(where, "d.rowid IN (SELECT rowid FROM designs_fts WHERE designs_fts MATCH ?)")
		args = append(args, strings.Join(terms, " "))
	}
	if q.Tag != "" {
		where = append(where, "EXISTS (SELECT 1 FROM design_tags t WHERE t.design_id = d.id AND t.tag = ?)")
		args = append(args, q.Tag)
	}
	if q.License != "" {
		where = append(where, "d.license = ?")
		args = append(args, q.License)
	}
	if q.Owner != "" {
		where = append(where, "d.owner = ?")
		args = append(args, q.Owner)
	}
	if q.Featured {
		where = append(where, "d.featured = 1")
	}
	if q.Origin != "" {
		where = append(where, `(d.origin_hub = ? OR d.origin_hub LIKE ? ESCAPE '\')`)
		args = append(args, q.Origin, strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(q.Origin)+":%")
	}
	if q.Cursor != "" {
		ts, id, err := catalog.DecodeCursor(q.Cursor)
		if err != nil {
			return catalog.Page{}, err
		}
		where = append(where, "(d.created_at < ? OR (d.created_at = ? AND d.id < ?))")
		args = append(args, ts, ts, id)
	}
	args = append(args, q.Limit+1)
	designs, err := c.queryDesigns(ctx, `SELECT `+prefixed("d.", designColumns)+` FROM designs d WHERE `+
		strings.Join(where, " AND ")+` ORDER BY d.created_at DESC, d.id DESC LIMIT ?`, args...)
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

func prefixed(p, columns string) string {
	cols := strings.Split(columns, ", ")
	for i := range cols {
		cols[i] = p + cols[i]
	}
	return strings.Join(cols, ", ")
}

func (c Catalog) SetHidden(ctx context.Context, designID string, hidden bool, at time.Time) error {
	return expectOne(c.db.write.ExecContext(ctx, `UPDATE designs SET hidden = ?, updated_at = ? WHERE id = ?`, hidden, unixNano(at), designID))
}

func (c Catalog) SetText(ctx context.Context, d catalog.Design) error {
	tx, err := c.db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// The search index keeps no copy of the text (content=''): a row is taken out of it
	// by giving the text it was indexed with.
	var rowid int64
	var title, summary, tags string
	err = tx.QueryRowContext(ctx, `SELECT rowid, title, summary, tags FROM designs WHERE id = ?`, d.ID).Scan(&rowid, &title, &summary, &tags)
	if err != nil {
		return fmt.Errorf("design %s: %w", d.ID, mapErr(err))
	}
	var old []string
	if err := json.Unmarshal([]byte(tags), &old); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO designs_fts(designs_fts, rowid, title, summary, tags) VALUES ('delete', ?, ?, ?, ?)`,
		rowid, title, summary, strings.Join(old, " ")); err != nil {
		return fmt.Errorf("unindex design %s: %w", d.ID, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO designs_fts(rowid, title, summary, tags) VALUES (?, ?, ?, ?)`,
		rowid, d.Title, d.Summary, strings.Join(d.Tags, " ")); err != nil {
		return fmt.Errorf("index design %s: %w", d.ID, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE designs SET title = ?, summary = ?, tags = ?, licensor = ?, updated_at = ? WHERE id = ?`,
		d.Title, d.Summary, mustJSON(d.Tags), d.Licensor, unixNano(d.UpdatedAt), d.ID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM design_tags WHERE design_id = ?`, d.ID); err != nil {
		return err
	}
	for _, t := range d.Tags {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO design_tags(design_id, tag) VALUES (?, ?)`, d.ID, t); err != nil {
			return err
		}
	}
	return mapErr(tx.Commit())
}

func (c Catalog) SetFeatured(ctx context.Context, designID string, featured bool) error {
	return expectOne(c.db.write.ExecContext(ctx, `UPDATE designs SET featured = ? WHERE id = ?`, featured, designID))
}

func (c Catalog) SetCounters(ctx context.Context, designID string, counters catalog.Counters) error {
	return expectOne(c.db.write.ExecContext(ctx, `UPDATE designs SET counters = ? WHERE id = ?`, mustJSON(counters), designID))
}

// SetMeshReports rewrites the version's files in one transaction: reports are
// deterministic, so two hubs (or replicas) analysing the same file at once write the
// same thing.
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

// rewriteFiles edits each file of a version with edit, in one transaction.
func (c Catalog) rewriteFiles(ctx context.Context, designID string, number int, edit func(*catalog.File)) error {
	tx, err := c.db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var data string
	if err := tx.QueryRowContext(ctx, `SELECT files FROM versions WHERE design_id = ? AND number = ?`, designID, number).Scan(&data); err != nil {
		return fmt.Errorf("version %d of %s: %w", number, designID, mapErr(err))
	}
	var files []catalog.File
	if err := json.Unmarshal([]byte(data), &files); err != nil {
		return err
	}
	for i := range files {
		edit(&files[i])
	}
	if _, err := tx.ExecContext(ctx, `UPDATE versions SET files = ? WHERE design_id = ? AND number = ?`, mustJSON(files), designID, number); err != nil {
		return mapErr(err)
	}
	return mapErr(tx.Commit())
}

func (c Catalog) ReferencedBlobs(ctx context.Context, fn func(string) error) error {
	rows, err := c.db.read.QueryContext(ctx, `SELECT j.value ->> 'sha256' FROM versions, json_each(versions.files) AS j
		UNION SELECT p.value ->> 'key' FROM jobs, json_each(jobs.data, '$.photos') AS p`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		if err := rows.Scan(&key); err != nil {
			return err
		}
		if err := fn(key); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (c Catalog) AddFlag(ctx context.Context, f catalog.Flag) error {
	_, err := c.db.exec(ctx, `INSERT INTO design_flags(design_id, user_id, handle, reason, created_at) VALUES (?, ?, ?, ?, ?)`,
		f.DesignID, f.UserID, f.Handle, f.Reason, unixNano(f.CreatedAt))
	return mapErr(err)
}

func (c Catalog) Flags(ctx context.Context, limit int) ([]catalog.Flag, error) {
	rows, err := c.db.query(ctx, `SELECT design_id, user_id, handle, reason, created_at FROM design_flags ORDER BY created_at DESC LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []catalog.Flag{}
	for rows.Next() {
		f, err := scanFlag(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

func (c Catalog) ClearFlags(ctx context.Context, designID string) error {
	_, err := c.db.exec(ctx, `DELETE FROM design_flags WHERE design_id = ?`, designID)
	return err
}

func scanFlag(row scanner) (catalog.Flag, error) {
	var f catalog.Flag
	var at int64
	err := row.Scan(&f.DesignID, &f.UserID, &f.Handle, &f.Reason, &at)
	f.CreatedAt = fromNano(at)
	return f, err
}

// Reindex builds the search index again from the designs (fabhub check -repair). The
// index keeps no copy of the text (content=”), so it is emptied and filled, in one
// transaction.
func (c Catalog) Reindex(ctx context.Context) (int, error) {
	tx, err := c.db.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO designs_fts(designs_fts) VALUES ('delete-all')`); err != nil {
		return 0, fmt.Errorf("empty the search index: %w", err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO designs_fts(rowid, title, summary, tags)
		SELECT rowid, title, summary, (SELECT coalesce(group_concat(value, ' '), '') FROM json_each(designs.tags)) FROM designs`)
	if err != nil {
		return 0, fmt.Errorf("fill the search index: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), mapErr(tx.Commit())
}
