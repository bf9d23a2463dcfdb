// SPDX-License-Identifier: Apache-2.0

package topohubtopo

import (
	"context"
	"fmt"
	"testing"
	"time"

	"vitess.io/vitess/go/stats"
	vschemapb "vitess.io/vitess/go/vt/proto/vschema"
	"vitess.io/vitess/go/vt/srvtopo"
	"vitess.io/vitess/go/vt/topo/test"
)

// What a lost hub must not do is look like Interrupted: srvtopo never
// watches again after it. With the hub killed, a change made meanwhile and
// the hub restarted, vtgate's own watcher must come to the new value.
func TestSrvtopo__watches_again_after_the_hub_is_lost_and_sees_the_change_made_meanwhile(t *testing.T) {
	db := openTestDB(t)
	db.useConfig(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ts := db.newTopoServer(t)
	defer ts.Close()

	put := func(name string) {
		t.Helper()
		v := &vschemapb.SrvVSchema{Keyspaces: map[string]*vschemapb.Keyspace{name: {}}}
		if err := ts.UpdateSrvVSchema(ctx, test.LocalCellName, v); err != nil {
			t.Fatal(err)
		}
	}
	put("before")
	// stats names are process-wide and may be exported once (go test -count).
	counts := stats.NewCountersWithSingleLabel(fmt.Sprintf("TopohubtopoTestSrvtopo%d", rootSeq.Add(1)), "srvtopo test", "type")
	w := srvtopo.NewSrvVSchemaWatcher(ctx, ts, counts, 200*time.Millisecond, 200*time.Millisecond)
	seen := make(chan string, 64)
	w.WatchSrvVSchema(ctx, test.LocalCellName, func(v *vschemapb.SrvVSchema, err error) bool {
		if v != nil {
			for k := range v.Keyspaces {
				select {
				case seen <- k:
				default:
				}
			}
		}
		return true
	})
	waitFor := func(name string) {
		t.Helper()
		deadline := time.After(60 * time.Second)
		for {
			select {
			case k := <-seen:
				if k == name {
					return
				}
			case <-deadline:
				t.Fatalf("srvtopo never delivered %q", name)
			}
		}
	}
	waitFor("before")

	db.env.Hub.Kill()
	time.Sleep(500 * time.Millisecond) // the watch ends; srvtopo retries and fails meanwhile
	put("while_the_hub_was_down")
	db.env.Hub.Restart(t)
	waitFor("while_the_hub_was_down")
}
