// SPDX-License-Identifier: Apache-2.0

package topohubtopo

import (
	"context"
	"sort"
	"strings"

	"vitess.io/vitess/go/vt/topo"
)

// dirPrefix is the key prefix of everything under dirPath, ending in "/".
func (s *Server) dirPrefix(dirPath string) string {
	p := s.fullPath(dirPath)
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// ListDir is part of topo.Conn. Directories are implied by the files under
// them; locks and elections live in their own tables, so nothing listed is
// ephemeral.
func (s *Server) ListDir(ctx context.Context, dirPath string, full bool) ([]topo.DirEntry, error) {
	prefix := s.dirPrefix(dirPath)
	if s.isClosed() {
		return nil, s.errClosed(prefix)
	}
	rows, err := s.db.QueryContext(ctx, s.q.anyUnder, likePrefix(prefix))
	if err != nil {
		return nil, ctxError(ctx, err, prefix)
	}
	defer rows.Close()
	kinds := map[string]topo.DirEntryType{}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, ctxError(ctx, err, prefix)
		}
		if !strings.HasPrefix(p, prefix) {
			continue // the column compared case-insensitively
		}
		rest := p[len(prefix):]
		name, _, deeper := strings.Cut(rest, "/")
		if name == "" {
			continue
		}
		if !deeper {
			kinds[name] = topo.TypeFile // a name that is both is shown as the file
		} else if _, seen := kinds[name]; !seen {
			kinds[name] = topo.TypeDirectory
		}
	}
	if err := rows.Err(); err != nil {
		return nil, ctxError(ctx, err, prefix)
	}
	if len(kinds) == 0 {
		return nil, topo.NewError(topo.NoNode, prefix)
	}
	out := make([]topo.DirEntry, 0, len(kinds))
	for name, kind := range kinds {
		e := topo.DirEntry{Name: name}
		if full {
			e.Type = kind
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// dirExists tells whether any file lies under dirPath (Lock's precondition).
func (s *Server) dirExists(ctx context.Context, prefix string) (bool, error) {
	rows, err := s.db.QueryContext(ctx, s.q.anyUnder+" LIMIT 64", likePrefix(prefix))
	if err != nil {
		return false, err
	}
	defer rows.Close()
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return false, err
		}
		if strings.HasPrefix(p, prefix) {
			return true, nil
		}
	}
	return false, rows.Err()
}
