// SPDX-License-Identifier: Apache-2.0

package topohub

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/topohub/topohub/plugins/go/internal/testenv"
)

// wholeCycle watches prefix once, reads it to SYNCED and a little past, and
// says what is wrong with what it saw: INITIAL events that are not one
// transaction's state (rows statements rewrite together), an INITIAL newer
// than SYNCED, or a PUT after SYNCED that is not newer than it.
func wholeCycle(c *Client, prefix string, rows int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := c.WatchRecursive(ctx, TableData, prefix)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer func() {
		cancel()
		for range ch { // the channel closes once the watch is gone
		}
	}()
	values := map[string]bool{}
	var initial int
	var maxInitial, synced uint64
	timeout := time.After(eventWait)
	for synced == 0 {
		select {
		case ev := <-ch:
			switch ev.Kind {
			case EventInitial:
				initial++
				values[string(ev.Value)] = true
				if ev.Revision > maxInitial {
					maxInitial = ev.Revision
				}
			case EventSynced:
				synced = ev.Revision
			default:
				return fmt.Errorf("%s before SYNCED", describe(ev))
			}
		case <-timeout:
			return fmt.Errorf("no SYNCED in %v (%d INITIAL)", eventWait, initial)
		}
	}
	if initial != rows || len(values) != 1 || maxInitial > synced {
		return fmt.Errorf("%d INITIAL events with %d values, newest INITIAL revision %d, SYNCED at %d: "+
			"the snapshot is not one transaction's state", initial, len(values), maxInitial, synced)
	}
	after := time.After(2 * time.Millisecond)
	for {
		select {
		case ev := <-ch:
			if ev.Kind == EventPut && ev.Revision <= synced {
				return fmt.Errorf("PUT %s at revision %d after SYNCED at %d", ev.Key, ev.Revision, synced)
			}
		case <-after:
			return nil
		}
	}
}

// Recursive watches registered while one statement after another rewrites
// 400 rows at once: each watch's INITIAL events are one transaction's state,
// none newer than SYNCED, and what comes after SYNCED is newer than it. (The
// chaos checker found the hub answering a snapshot that held part of a
// transaction whose ring batch was not committed yet; SYNCED named the
// revision before it and the rest came live, tests/test_plugin_live.c has
// the C twin.) Three clients watch at random moments, so that hundreds of
// snapshots meet the writer mid-way.
func TestWatchRecursive_snapshot_during_a_large_transaction_is_whole(t *testing.T) {
	checkGoroutines(t)
	e := startEnv(t, testenv.HubOptions{})
	const rows, rounds, clients = 400, 250, 3
	var q strings.Builder
	q.WriteString("INSERT INTO topo.topo_data (path, data, version) VALUES ")
	for i := 0; i < rows; i++ {
		if i > 0 {
			q.WriteString(",")
		}
		fmt.Fprintf(&q, "('/whole/k%03d', '0', 1)", i)
	}
	e.DB.MustExec(t, q.String())
	cs := make([]*Client, clients)
	for i := range cs {
		cs[i] = openClient(t, e, Options{})
	}
	var upd strings.Builder
	for i := 1; i <= rounds; i++ {
		fmt.Fprintf(&upd, "UPDATE topo.topo_data SET data = '%d', version = version + 1 WHERE path LIKE '/whole/%%';\n", i)
	}
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make([]error, clients)
	cycles := make([]int, clients)
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(time.Now().UnixNano() + int64(i)))
			for !done.Load() {
				// SYNCED comes at a transaction's end: start the next watch
				// at a random moment of the writer's cycle.
				time.Sleep(time.Duration(rnd.Intn(8000)) * time.Microsecond)
				if err := wholeCycle(c, "/whole/", rows); err != nil {
					errs[i] = fmt.Errorf("client %d, cycle %d: %w", i, cycles[i], err)
					return
				}
				cycles[i]++
			}
		}()
	}
	_, werr := e.DB.Exec(upd.String())
	done.Store(true)
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%v watch cycles over %d transactions of %d rows", cycles, rounds, rows)
}
