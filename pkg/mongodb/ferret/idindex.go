package ferret

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the driver FerretDB itself uses
)

// FerretDB 1.24's SQLite backend pushes a filter on _id down as
//
//	WHERE _ferretdb_sjson->'$._id' = ?
//
// but its unique index on _id is built on _ferretdb_sjson->"_id". SQLite
// uses an expression index only for the identical expression, so every
// find, update and delete by _id reads and parses the whole table: 75 ms
// at 20,000 documents, 400 ms at 100,000, growing without bound (inserts,
// checked against the unique index, stay flat). The index below is the
// expression the queries use; with it the same operations take about
// 0.5 ms at any size. FerretDB does not know of it (its catalogue lists
// its own indexes), and dropping a collection drops it with the table.
const idIndexSuffix = "__sb_id_path"

// idIndexer adds the index to every collection table of every database in
// dir, as collections appear.
type idIndexer struct {
	dir string
	log *slog.Logger
}

func (x *idIndexer) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		x.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pass indexes the tables that lack the index.
func (x *idIndexer) pass(ctx context.Context) {
	files, _ := filepath.Glob(filepath.Join(x.dir, "*.sqlite"))
	for _, f := range files {
		// A fresh connection each pass: one kept open did not see the
		// tables FerretDB created after it opened.
		db, err := sql.Open("sqlite", "file:"+f+"?_pragma=busy_timeout(5000)")
		if err != nil {
			continue
		}
		if err := indexTables(ctx, db); err != nil && ctx.Err() == nil {
			x.log.WarnContext(ctx, "ferretdb _id index", "file", filepath.Base(f), "err", err)
		}
		_ = db.Close()
	}
}

func indexTables(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `SELECT t.name FROM sqlite_master t
		WHERE t.type = 'table' AND t.sql LIKE '%_ferretdb_sjson%' AND t.name NOT LIKE '\_ferretdb\_%' ESCAPE '\'
		AND NOT EXISTS (SELECT 1 FROM sqlite_master i WHERE i.type = 'index' AND i.name = t.name || ?)`, idIndexSuffix)
	if err != nil {
		return err
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			_ = rows.Close()
			return err
		}
		tables = append(tables, name)
	}
	_ = rows.Close()
	for _, t := range tables {
		q := fmt.Sprintf(`CREATE UNIQUE INDEX IF NOT EXISTS %s ON %s (_ferretdb_sjson->'$._id')`,
			quoteIdent(t+idIndexSuffix), quoteIdent(t))
		if _, err := db.ExecContext(ctx, q); err != nil && !strings.Contains(err.Error(), "no such table") {
			return fmt.Errorf("index %s: %w", t, err)
		}
	}
	return nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
