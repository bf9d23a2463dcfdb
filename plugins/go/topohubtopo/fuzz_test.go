package topohubtopo

import (
	"strings"
	"testing"
)

// Whatever an operator types as a server address: an error or a
// configuration, never a panic, and never a schema name that needs quoting.
func FuzzParseServerAddr(f *testing.F) {
	for _, s := range []string{"db1", "db1:3306/topo", "[::1]:3306", "u:p@tcp(h:1)/s?tls=true",
		"unix(/s)/t", "(", "@", "h:/x`y", "h:99999999/a", "tcp(h:1)/a?timeout=zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		cfg, schema, err := parseServerAddr(addr, Config{User: "u"})
		if err != nil {
			return
		}
		if cfg == nil || !schemaName.MatchString(schema) || strings.ContainsAny(schema, "`.") {
			t.Fatalf("%q: accepted with schema %q", addr, schema)
		}
	})
}

// A GTID the server or a hub may print: ignored or recorded, never a panic,
// and the position is always one the tracker can print again.
func FuzzGTIDTracker(f *testing.F) {
	for _, s := range []string{"0-1-5", "18446744073709551615-1-1", "-1-1", "0--1", "a-b-c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, g string) {
		tr := &gtidTracker{mariadb: map[uint64]mariaGTID{}}
		tr.addMariaDB(g)
		p := tr.position()
		if p == "" {
			return
		}
		again := &gtidTracker{mariadb: map[uint64]mariaGTID{}}
		again.addMariaDB(p)
		if again.position() != p {
			t.Fatalf("%q: position %q does not read back (%q)", g, p, again.position())
		}
	})
}
