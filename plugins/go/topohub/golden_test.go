// SPDX-License-Identifier: Apache-2.0

package topohub

// The golden vectors of tests/test_golden.c, written from the C structs and
// the real ring writer and reader: the Go decoders must read every field as
// the C side wrote it, and the Go encoders and slot writes must produce the
// C bytes. Regenerate with build/tests/test_golden --write DIR.

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

const goldenDir = "testdata/golden"

type golden map[string]string

func loadGolden(t testing.TB) golden {
	t.Helper()
	f, err := os.Open(filepath.Join(goldenDir, "golden.txt"))
	if err != nil {
		t.Fatalf("golden vectors: %v", err)
	}
	defer f.Close()
	g := golden{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, " = ")
		if !ok {
			t.Fatalf("golden.txt: %q", line)
		}
		g[k] = v
	}
	return g
}

func (g golden) u64(t testing.TB, k string) uint64 {
	t.Helper()
	v, ok := g[k]
	if !ok {
		t.Fatalf("golden.txt has no %s", k)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("golden.txt %s: %v", k, err)
	}
	return n
}

func (g golden) bytes(t testing.TB, k string) []byte {
	t.Helper()
	v, ok := g[k]
	if !ok {
		t.Fatalf("golden.txt has no %s", k)
	}
	b, err := hex.DecodeString(v)
	if err != nil {
		t.Fatalf("golden.txt %s: %v", k, err)
	}
	return b
}

func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, name))
	if err != nil {
		t.Fatalf("golden vectors: %v", err)
	}
	return b
}

// aligned copies b into 8-byte aligned memory, as a mapping is.
func aligned(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	w := make([]uint64, (len(b)+7)/8)
	out := unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), len(b))
	copy(out, b)
	return out
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

func TestGolden_ring_records_read_as_the_C_reader_read_them(t *testing.T) {
	g := loadGolden(t)
	ring, slot := aligned(readGolden(t, "ring.bin")), aligned(readGolden(t, "slot.bin"))
	r, err := newRingReader(ring, slot)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "capacity", r.capacity, g.u64(t, "ring.capacity"))
	eq(t, "max_record", uint64(r.maxRecord), g.u64(t, "ring.max_record"))
	eq(t, "generation", r.generation, g.u64(t, "ring.generation"))
	head, oldest := g.u64(t, "ring.head"), g.u64(t, "ring.oldest")
	eq(t, "head", r.loadHead(), head)
	eq(t, "read_pos (caught up)", r.pos, g.u64(t, "slot.read_pos"))
	if _, st := r.read(); st != readEmpty {
		t.Fatalf("a caught-up reader read %v", st)
	}
	// From the oldest intact record: every record the C reader read that is still intact.
	r.pos, r.head = oldest, oldest
	n := int(g.u64(t, "ring.records"))
	intact := 0
	for i := 0; i < n; i++ {
		p := "record" + strconv.Itoa(i) + "."
		if g.u64(t, p+"intact") == 0 {
			continue
		}
		intact++
		rec, st := r.read()
		if st != readRecord {
			t.Fatalf("record %d: status %v", i, st)
		}
		eq(t, p+"pos", rec.Pos, g.u64(t, p+"pos"))
		eq(t, p+"type", uint64(rec.Type), g.u64(t, p+"type"))
		eq(t, p+"flags", uint64(rec.Flags), g.u64(t, p+"flags"))
		eq(t, p+"len", uint64(len(rec.Payload)), g.u64(t, p+"len"))
		eq(t, p+"publish_ns", rec.PublishNs, g.u64(t, p+"publish_ns"))
		if !bytes.Equal(rec.Payload, g.bytes(t, p+"payload")) {
			t.Errorf("%spayload differs", p)
		}
		switch rec.Type {
		case recResync:
			rs, err := decodeResync(rec.Payload)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, p+"resync.revision", rs.Revision, g.u64(t, p+"resync.revision"))
			eq(t, p+"resync.reason", uint64(rs.Reason), g.u64(t, p+"resync.reason"))
			eq(t, p+"resync.table", uint64(rs.Table), g.u64(t, p+"resync.table"))
		case recChange:
			ch, err := decodeChange(rec.Payload)
			if err != nil {
				t.Fatal(err)
			}
			q := p + "change."
			eq(t, q+"revision", ch.Revision, g.u64(t, q+"revision"))
			eq(t, q+"version", uint64(ch.Version), g.u64(t, q+"version"))
			eq(t, q+"commit_us", ch.CommitUs, g.u64(t, q+"commit_us"))
			eq(t, q+"publish_ns", ch.PublishNs, g.u64(t, q+"publish_ns"))
			eq(t, q+"table", uint64(ch.Table), g.u64(t, q+"table"))
			eq(t, q+"op", uint64(ch.Op), g.u64(t, q+"op"))
			eq(t, q+"flags", uint64(ch.Flags), g.u64(t, q+"flags"))
			eq(t, q+"key", string(ch.Key), string(g.bytes(t, q+"key")))
			eq(t, q+"value", string(ch.Value), string(g.bytes(t, q+"value")))
			eq(t, q+"gtid", string(ch.GTID), string(g.bytes(t, q+"gtid")))
			eq(t, q+"key_len", uint64(len(ch.Key)), g.u64(t, q+"key_len"))
			eq(t, q+"value_len", uint64(len(ch.Value)), g.u64(t, q+"value_len"))
			eq(t, q+"gtid_len", uint64(len(ch.GTID)), g.u64(t, q+"gtid_len"))
		default:
			t.Fatalf("record %d: type %d", i, rec.Type)
		}
	}
	if intact == 0 || intact == n {
		t.Fatalf("%d of %d records intact: the vectors should hold both kinds", intact, n)
	}
	if _, st := r.read(); st != readEmpty {
		t.Fatalf("past the last record: %v", st)
	}
	eq(t, "position at the end", r.pos, head)
	// A position the writer reclaimed: lapped, with certainty, and sticky.
	r.pos, r.head = g.u64(t, "record0.pos"), g.u64(t, "record0.pos")
	if _, st := r.read(); st != readLapped {
		t.Fatalf("reading a reclaimed record: %v", st)
	}
	if _, st := r.read(); st != readLapped {
		t.Fatalf("lapped is sticky until rejoin: %v", st)
	}
}

func TestGolden_slot_writes_are_the_C_reader_writes(t *testing.T) {
	g := loadGolden(t)
	ring := aligned(readGolden(t, "ring.bin"))
	slot := aligned(readGolden(t, "slot.bin"))
	r, err := newRingReader(ring, slot)
	if err != nil {
		t.Fatal(err)
	}
	// Armed in fd mode: the same sleep word as th_ring_reader_arm.
	if r.prepareSleep(sleepFD) {
		t.Fatal("a caught-up reader should sleep")
	}
	if want := readGolden(t, "slot-armed.bin"); !bytes.Equal(slot, want) {
		t.Fatalf("armed slot differs from the C one:\n got %x\nwant %x", slot[:slotPageLen], want[:slotPageLen])
	}
	// The timeout word.
	fresh := aligned(readGolden(t, "slot.bin"))
	le.PutUint64(fresh[slotTimeout:], 0)
	r2, _ := newRingReader(ring, fresh)
	r2.setTimeoutNs(g.u64(t, "slot.timeout_ns"))
	if !bytes.Equal(fresh, readGolden(t, "slot.bin")) {
		t.Fatal("timeout word differs from th_ring_reader_set_timeout's")
	}
	// Evicted (as lapped), then rejoined: the same acknowledgement.
	ev := aligned(readGolden(t, "slot-evicted.bin"))
	r3, err := newRingReader(ring, ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, st := r3.read(); st != readEvicted {
		t.Fatalf("evicted slot: %v", st)
	}
	eq(t, "evict reason", uint64(r3.evictReason()), g.u64(t, "slot.evict_reason"))
	r3.rejoin()
	if want := readGolden(t, "slot-rejoined.bin"); !bytes.Equal(ev, want) {
		t.Fatalf("rejoined slot differs from the C one:\n got %x\nwant %x", ev[:slotPageLen], want[:slotPageLen])
	}
	if _, st := r3.read(); st != readEmpty {
		t.Fatalf("after rejoin: %v", st)
	}
}

func TestGolden_requests_encode_to_the_C_bytes(t *testing.T) {
	g := loadGolden(t)
	cases := []struct {
		name string
		typ  uint16
		body []byte
	}{
		{"attach", msgAttach, attachRequest{TimeoutNs: g.u64(t, "attach.timeout_ns"), PID: uint32(g.u64(t, "attach.pid")),
			Name: string(g.bytes(t, "attach.name"))}.encode()},
		{"snapshot", msgSnapshot, encodeKeyRequest(uint32(g.u64(t, "snapshot.table")), string(g.bytes(t, "snapshot.prefix")))},
		{"get", msgGet, encodeKeyRequest(uint32(g.u64(t, "get.table")), string(g.bytes(t, "get.key")))},
		{"sync", msgSync, encodeSyncRequest(g.u64(t, "sync.timeout_ns"), string(g.bytes(t, "sync.gtid")))},
		{"rejoin", msgRejoin, nil},
		{"stats", msgStats, nil},
	}
	for _, c := range cases {
		m, err := encodeRequest(c.typ, uint32(g.u64(t, "msg-"+c.name+".request_id")), c.body)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, c.name+" type", uint64(c.typ), g.u64(t, "msg-"+c.name+".type"))
		if want := readGolden(t, "msg-"+c.name+".bin"); !bytes.Equal(m, want) {
			t.Errorf("%s: got %x, want %x", c.name, m, want)
		}
	}
}

func goldenReply(t *testing.T, g golden, name string, typ uint16) []byte {
	t.Helper()
	m := readGolden(t, "msg-"+name+".bin")
	eq(t, name+" type", uint64(typ|msgReply), g.u64(t, "msg-"+name+".type"))
	body, err := decodeReply(m, typ, uint32(g.u64(t, "msg-"+name+".request_id")))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	// The same reply to another request, or another type, is refused.
	if _, err := decodeReply(m, typ, uint32(g.u64(t, "msg-"+name+".request_id"))+1); !errors.Is(err, ErrProto) {
		t.Errorf("%s with another request id: %v", name, err)
	}
	if _, err := decodeReply(m, typ^0x10, uint32(g.u64(t, "msg-"+name+".request_id"))); !errors.Is(err, ErrProto) {
		t.Errorf("%s as another type: %v", name, err)
	}
	return body
}

func TestGolden_replies_decode_field_by_field(t *testing.T) {
	g := loadGolden(t)
	ar, err := decodeAttachReply(goldenReply(t, g, "attach-reply", msgAttach))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "attach generation", ar.Generation, g.u64(t, "attach-reply.generation"))
	eq(t, "attach start_pos", ar.StartPos, g.u64(t, "attach-reply.start_pos"))
	eq(t, "attach revision", ar.Revision, g.u64(t, "attach-reply.revision"))
	eq(t, "attach timeout_ns", ar.TimeoutNs, g.u64(t, "attach-reply.timeout_ns"))
	eq(t, "attach reader_id", uint64(ar.ReaderID), g.u64(t, "attach-reply.reader_id"))
	eq(t, "attach ntables", uint64(ar.NTables), g.u64(t, "attach-reply.ntables"))

	sr, err := decodeSnapshotReply(goldenReply(t, g, "snapshot-reply", msgSnapshot))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "snapshot revision", sr.Revision, g.u64(t, "snapshot-reply.revision"))
	eq(t, "snapshot start_revision", sr.StartRevision, g.u64(t, "snapshot-reply.start_revision"))
	eq(t, "snapshot count", sr.Count, g.u64(t, "snapshot-reply.count"))
	eq(t, "snapshot bytes", sr.Bytes, g.u64(t, "snapshot-reply.bytes"))
	eq(t, "snapshot pending_revision", sr.PendingRevision, g.u64(t, "snapshot-reply.pending_revision"))
	snap := readGolden(t, "snapshot.bin")
	eq(t, "snapshot.bin size", uint64(len(snap)), sr.Bytes)
	items, err := parseSnapshot(snap, sr.Count)
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range items {
		p := "entry" + strconv.Itoa(i) + "."
		eq(t, p+"revision", it.Revision, g.u64(t, p+"revision"))
		eq(t, p+"version", uint64(it.Version), g.u64(t, p+"version"))
		eq(t, p+"flags", uint64(it.Flags), g.u64(t, p+"flags"))
		eq(t, p+"key", it.Key, string(g.bytes(t, p+"key")))
		eq(t, p+"value", string(it.Value), string(g.bytes(t, p+"value")))
	}
	if _, err := parseSnapshot(snap, sr.Count+1); !errors.Is(err, ErrProto) {
		t.Errorf("one entry more than the memfd holds: %v", err)
	}
	if _, err := parseSnapshot(snap[:len(snap)-9], sr.Count); !errors.Is(err, ErrProto) {
		t.Errorf("a truncated memfd: %v", err)
	}
	if _, err := parseSnapshot(make([]byte, len(snap)), sr.Count); !errors.Is(err, ErrProto) {
		t.Errorf("a memfd of zeros: %v", err)
	}

	rev, err := decodeRevisionReply(goldenReply(t, g, "sync-reply", msgSync))
	eq(t, "sync revision", rev, g.u64(t, "sync-reply.revision"))
	rev, err = decodeRevisionReply(goldenReply(t, g, "rejoin-reply", msgRejoin))
	eq(t, "rejoin revision", rev, g.u64(t, "rejoin-reply.revision"))
	st := goldenReply(t, g, "stream-reply", 9)
	eq(t, "stream revision", le.Uint64(st[0:]), g.u64(t, "stream-reply.revision"))
	eq(t, "stream sndbuf", le.Uint64(st[8:]), g.u64(t, "stream-reply.sndbuf"))

	_, err = decodeReply(readGolden(t, "msg-error.bin"), msgGet, uint32(g.u64(t, "msg-error.request_id")))
	var he *HubError
	if !errors.As(err, &he) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("ERROR reply: %v", err)
	}
	eq(t, "error code", uint64(int64(he.Code)), g.u64(t, "error.code"))
	eq(t, "error text", he.Message, string(g.bytes(t, "error.text")))
}

func TestGolden_a_filter_and_a_jump_are_the_C_reader_s(t *testing.T) {
	g := loadGolden(t)
	// The filter words and the word that announces them, as
	// th_ring_reader_set_filter writes them on a fresh slot.
	slot := aligned(readGolden(t, "slot.bin"))
	r, err := newRingReader(aligned(readGolden(t, "ring.bin")), slot)
	if err != nil {
		t.Fatal(err)
	}
	var f [tagWords]uint64
	f[1], f[7] = g.u64(t, "slot-filtered.filter1"), g.u64(t, "slot-filtered.filter7")
	r.setFilter(&f)
	want := readGolden(t, "slot-filtered.bin")
	if !bytes.Equal(slot[slotFilterWord:slotFilterWord+8], want[slotFilterWord:slotFilterWord+8]) ||
		!bytes.Equal(slot[slotFilter:slotFilter+tagWords*8], want[slotFilter:slotFilter+tagWords*8]) {
		t.Fatalf("filter differs from the C one:\n got %x\nwant %x", slot[64:192], want[64:192])
	}
	// The writer's hint: the reader jumps over the two batches it was not
	// woken for, never reading them, and learns the last one's note.
	fs := aligned(want)
	r2, err := newRingReader(aligned(readGolden(t, "ring-filtered.bin")), fs)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "position before", r2.pos, g.u64(t, "slot-filtered.skip_from"))
	if _, st := r2.read(); st != readEmpty {
		t.Fatalf("after the jump: %v", st)
	}
	eq(t, "position after", r2.pos, g.u64(t, "slot-filtered.skip_to"))
	eq(t, "jumps", r2.skips, uint64(1))
	eq(t, "note", r2.skipNote, g.u64(t, "slot-filtered.skip_note"))
	eq(t, "read_pos stored", le.Uint64(fs[slotReadPos:]), g.u64(t, "slot-filtered.skip_to"))

	// A wait is not ended by those batches: readyForUs jumps over them.
	fs3 := aligned(want)
	r3, err := newRingReader(aligned(readGolden(t, "ring-filtered.bin")), fs3)
	if err != nil {
		t.Fatal(err)
	}
	if !r3.ready() {
		t.Fatal("the head is past the reader: ready")
	}
	if r3.readyForUs() {
		t.Fatal("only batches for others: not ready for us")
	}
	eq(t, "position after readyForUs", r3.pos, g.u64(t, "slot-filtered.skip_to"))
	eq(t, "jumps", r3.skips, uint64(1))
}

func TestGolden_batch_tags_are_the_hubs(t *testing.T) {
	g := loadGolden(t)
	n := int(g.u64(t, "tags.count"))
	if n == 0 {
		t.Fatal("no tag vectors")
	}
	for i := 0; i < n; i++ {
		obj := fmt.Sprintf("tags%d", i)
		table := uint32(g.u64(t, obj+".table"))
		key := string(g.bytes(t, obj+".key"))
		eq(t, obj+" bit", uint64(tagBit(table, key)), g.u64(t, obj+".bit"))
		var tags [tagWords]uint64
		tagKey(&tags, table, key)
		for k := 0; k < tagWords; k++ {
			eq(t, fmt.Sprintf("%s word%d", obj, k), tags[k], g.u64(t, fmt.Sprintf("%s.word%d", obj, k)))
		}
	}
}

// The wake-up delay a moderating C writer publishes is the one the Go reader
// naps by, within its own bound, and a busy stream naps once per wait.
func TestGolden_the_wake_up_delay_is_the_C_writer_s(t *testing.T) {
	g := loadGolden(t)
	hdr := readGolden(t, "ring-moderated-header.bin")
	capacity := le.Uint64(hdr[offCapacity:])
	ring := aligned(append(hdr, make([]byte, capacity)...))
	slot := aligned(readGolden(t, "slot.bin"))
	le.PutUint64(slot[slotGeneration:], le.Uint64(hdr[offGeneration:])) // a slot of this ring
	r, err := newRingReader(ring, slot)
	if err != nil {
		t.Fatal(err)
	}
	want := g.u64(t, "ring-moderated.wake_delay_ns")
	eq(t, "delay", r.delay(), want)
	r.setMaxDelay(want - 1000)
	eq(t, "delay within our bound", r.delay(), want-1000)
	r.setMaxDelay(wakeDelayMin - 1)
	eq(t, "delay below the floor", r.delay(), 0)
	r.setMaxDelay(math.MaxUint64)

	// Woken again within the delay: busy; later than it: not.
	r.wokeNs = 1_000_000
	r.woken(1_000_000 + want/2)
	eq(t, "busy after a quick second wake-up", r.busy, true)
	r.woken(1_000_000 + want/2 + want + 1)
	eq(t, "busy after a slow one", r.busy, false)

	// A busy wait naps (no sleeping flag), finds nothing, then sleeps with
	// the flag until its timeout.
	var kick atomic.Uint32
	now := func() uint64 { return uint64(time.Now().UnixNano()) }
	r.busy, r.wokeNs = true, now()
	if r.waitFutex(5*time.Millisecond, &kick, kick.Load(), now) {
		t.Fatal("a wait on a ring with nothing new found something")
	}
	eq(t, "naps", r.naps, 1)
	eq(t, "busy after a nap that found nothing", r.busy, false)
	if r.waitFutex(time.Millisecond, &kick, kick.Load(), now) {
		t.Fatal("a wait on a ring with nothing new found something")
	}
	eq(t, "naps of a wait that is not busy", r.naps, 1)
}
