// SPDX-License-Identifier: Apache-2.0

package topohub

// Fuzz targets for every parser of bytes from the ring or the socket, seeded
// with the golden vectors. Bad input must give an error, never a panic, and
// what is accepted must be within its bounds. They run as ordinary tests on
// the seeds; `go test -fuzz FuzzX` explores.

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func goldenFiles(f *testing.F, pattern string) [][]byte {
	names, _ := filepath.Glob(filepath.Join(goldenDir, pattern))
	if len(names) == 0 {
		f.Fatalf("no golden files %s", pattern)
	}
	var out [][]byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func FuzzDecodeRecord(f *testing.F) {
	g := loadGolden(f)
	for i := 0; ; i++ {
		p := "record" + strconv.Itoa(i) + "."
		if _, ok := g[p+"payload"]; !ok {
			break
		}
		f.Add(uint16(g.u64(f, p+"type")), g.bytes(f, p+"payload"))
	}
	f.Fuzz(func(t *testing.T, typ uint16, p []byte) {
		switch typ % 3 {
		case 1:
			ch, err := decodeChange(p)
			if err != nil {
				if !errors.Is(err, ErrProto) {
					t.Fatalf("error not ErrProto: %v", err)
				}
				return
			}
			if changeHeaderSize+len(ch.Key)+len(ch.Value)+len(ch.GTID) > len(p) {
				t.Fatalf("decoded more than the record holds")
			}
		default:
			if _, err := decodeResync(p); err != nil && len(p) >= resyncRecSize {
				t.Fatalf("resync of %d bytes refused: %v", len(p), err)
			}
		}
	})
}

func FuzzParseSnapshot(f *testing.F) {
	g := loadGolden(f)
	for _, b := range goldenFiles(f, "snapshot.bin") {
		f.Add(b, g.u64(f, "snapshot-reply.count"))
	}
	f.Add([]byte{}, uint64(1<<60))
	f.Fuzz(func(t *testing.T, b []byte, count uint64) {
		items, err := parseSnapshot(b, count)
		if err != nil {
			if !errors.Is(err, ErrProto) {
				t.Fatalf("error not ErrProto: %v", err)
			}
			return
		}
		if uint64(len(items)) != count {
			t.Fatalf("%d items for a count of %d", len(items), count)
		}
		total := 0
		for _, it := range items {
			if len(it.Key) > keyMax {
				t.Fatalf("key of %d bytes", len(it.Key))
			}
			total += snapEntrySize + len(it.Key) + len(it.Value)
		}
		if total > len(b) {
			t.Fatalf("items of %d bytes from %d", total, len(b))
		}
	})
}

func FuzzDecodeReply(f *testing.F) {
	for _, b := range goldenFiles(f, "msg-*.bin") {
		h, _ := parseHeader(b)
		f.Add(b, h.Type&^msgReply, h.RequestID)
	}
	f.Fuzz(func(t *testing.T, m []byte, typ uint16, req uint32) {
		body, err := decodeReply(m, typ, req)
		if err != nil {
			var he *HubError
			if !errors.Is(err, ErrProto) && !errors.Is(err, ErrVersion) && !errors.As(err, &he) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			if he != nil && he.Code >= 0 {
				t.Fatalf("ERROR with code %d accepted", he.Code)
			}
			return
		}
		if len(body) != len(m)-hdrSize {
			t.Fatalf("body of %d bytes from a message of %d", len(body), len(m))
		}
		// Every body decoder on whatever came: errors, never panics.
		decodeAttachReply(body)
		decodeSnapshotReply(body)
		decodeRevisionReply(body)
	})
}

func FuzzRingRead(f *testing.F) {
	ring := goldenFiles(f, "ring.bin")[0]
	for _, s := range goldenFiles(f, "slot*.bin") {
		f.Add(ring, s, uint64(0))
	}
	g := loadGolden(f)
	f.Add(ring, goldenFiles(f, "slot.bin")[0], g.u64(f, "ring.oldest"))
	f.Add(ring, goldenFiles(f, "slot.bin")[0], g.u64(f, "record0.pos"))
	f.Fuzz(func(t *testing.T, ringBytes, slotBytes []byte, start uint64) {
		r, err := newRingReader(aligned(ringBytes), aligned(slotBytes))
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error not ErrFormat: %v", err)
			}
			return
		}
		if start != 0 && start%8 == 0 && start <= r.loadHead() {
			r.pos, r.head = start, start
		}
		for i := 0; i < 64; i++ {
			rec, st := r.read()
			if st != readRecord {
				return
			}
			if uint32(len(rec.Payload)) > r.maxRecord {
				t.Fatalf("record of %d bytes, max %d", len(rec.Payload), r.maxRecord)
			}
			if rec.Type == recChange {
				decodeChange(rec.Payload)
			}
		}
		r.prepareSleep(sleepFD)
		r.endSleep()
		r.rejoin()
	})
}
