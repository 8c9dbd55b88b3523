package sqlite

import (
	"context"
	"encoding/json"

	"github.com/fabcommons/fabcommons/fabrication"
)

// The ledger is one table: the entry's JSON, with the columns its queries need. seq is
// the primary key and closes unique, so a second writer for the same place in the
// chain, or for what was already closed, gets storage.ErrConflict.

func (f Fabrication) LedgerHead(ctx context.Context) (fabrication.LedgerEntry, error) {
	es, err := queryJSON[fabrication.LedgerEntry](ctx, f.db.read, `SELECT data FROM ledger ORDER BY seq DESC LIMIT 1`)
	if err != nil || len(es) == 0 {
		return fabrication.LedgerEntry{}, err
	}
	return es[0], nil
}

const insertLedger = `INSERT INTO ledger(seq, closes, kind, from_account, to_account, data) VALUES (?, ?, ?, ?, ?, ?)`

func (f Fabrication) AppendLedger(ctx context.Context, e fabrication.LedgerEntry) error {
	_, err := f.db.exec(ctx, insertLedger, e.Seq, e.Closes, e.Kind, e.From, e.To, mustJSON(e))
	return mapErr(err)
}

// AppendLedgers is one op of the group commit: the entries up to the first refused
// are written with one commit, where one commit each made the free labs' records
// (a batch of 256 waited on 256 commits) the ceiling of jobs finished per second.
func (f Fabrication) AppendLedgers(ctx context.Context, es []fabrication.LedgerEntry) (int, error) {
	steps := make([]writeStep, len(es))
	for i, e := range es {
		steps[i] = writeStep{query: insertLedger, args: []any{e.Seq, e.Closes, e.Kind, e.From, e.To, mustJSON(e)}}
	}
	n, err := f.db.execSteps(ctx, false, steps)
	return n, mapErr(err)
}

func (f Fabrication) LedgerEntries(ctx context.Context, account string, after int64, limit int) ([]fabrication.LedgerEntry, error) {
	if account == "" {
		return f.ledgerRows(ctx, `SELECT closes, data FROM ledger WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	}
	return f.ledgerRows(ctx, `SELECT closes, data FROM ledger WHERE (from_account = ? OR to_account = ?) AND seq > ? ORDER BY seq LIMIT ?`,
		account, account, after, limit)
}

func (f Fabrication) LedgerPage(ctx context.Context, account string, kinds []string, before int64, limit int) ([]fabrication.LedgerEntry, error) {
	in, args := inList(kinds)
	q := `SELECT closes, data FROM ledger WHERE kind IN ` + in + ` AND seq < ?`
	args = append(args, before)
	if account != "" {
		q += ` AND (from_account = ? OR to_account = ?)`
		args = append(args, account, account)
	}
	return f.ledgerRows(ctx, q+` ORDER BY seq DESC LIMIT ?`, append(args, limit)...)
}

func (f Fabrication) LedgerClosing(ctx context.Context, closes string) (fabrication.LedgerEntry, error) {
	return scanLedger(f.db.queryRow(ctx, `SELECT closes, data FROM ledger WHERE closes = ?`, closes))
}

func scanLedger(row scanner) (fabrication.LedgerEntry, error) {
	var closes, data string
	if err := row.Scan(&closes, &data); err != nil {
		return fabrication.LedgerEntry{}, mapErr(err)
	}
	var e fabrication.LedgerEntry
	err := json.Unmarshal([]byte(data), &e)
	e.Closes = closes
	return e, err
}

func (f Fabrication) ledgerRows(ctx context.Context, query string, args ...any) ([]fabrication.LedgerEntry, error) {
	rows, err := f.db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []fabrication.LedgerEntry{}
	for rows.Next() {
		e, err := scanLedger(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
