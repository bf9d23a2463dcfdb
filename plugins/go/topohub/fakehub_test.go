// SPDX-License-Identifier: Apache-2.0

package topohub

// A fake hub on a real SOCK_SEQPACKET socket that answers ATTACH with what
// a broken or foreign hub might send: every case must be a clear error from
// Open, never a panic, and no descriptor or goroutine left behind.

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

type fakeReply struct {
	msg []byte
	fds []*os.File
}

// fakeHub answers every request of each connection with reply(request),
// serving the connections at once (a client has its reader's and a query
// connection).
func fakeHub(t *testing.T, reply func(req []byte) fakeReply) string {
	path := filepath.Join(t.TempDir(), "fake.sock")
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				// Every request until the client closes (or 10 s of silence).
				buf := make([]byte, msgMax)
				for {
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					n, _, _, _, err := c.ReadMsgUnix(buf, nil)
					if err != nil || n == 0 {
						return
					}
					r := reply(buf[:n])
					var fds []int
					for _, f := range r.fds {
						fds = append(fds, int(f.Fd()))
					}
					var oob []byte
					if len(fds) > 0 {
						oob = syscall.UnixRights(fds...)
					}
					c.WriteMsgUnix(r.msg, oob, nil)
				}
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return path
}

func replyTo(req []byte, typ uint16, body []byte) []byte {
	h, _ := parseHeader(req)
	m := make([]byte, hdrSize+len(body))
	msgHeader{protoMagic, protoVersion, typ, 0, uint32(len(m)), h.RequestID}.put(m)
	copy(m[hdrSize:], body)
	return m
}

func goldenAttachBody(t *testing.T) []byte {
	b, err := os.ReadFile(filepath.Join(goldenDir, "msg-attach-reply.bin"))
	if err != nil {
		t.Fatal(err)
	}
	body := append([]byte(nil), b[hdrSize:]...)
	le.PutUint32(body[36:], 3) // ntables
	return body
}

// tempFile holds b, as a memfd would (mapped by the client).
func tempFile(t *testing.T, b []byte) *os.File {
	f, err := os.CreateTemp(t.TempDir(), "fake")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(b)
	t.Cleanup(func() { f.Close() })
	return f
}

func openFDs() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}

func TestOpen_refuses_what_a_broken_hub_sends_with_a_clear_error(t *testing.T) {
	checkGoroutines(t)
	ring := readGolden(t, "ring.bin")
	slot := readGolden(t, "slot.bin")
	badMagic := append([]byte(nil), ring...)
	badMagic[0] ^= 0xff
	badFormat := append([]byte(nil), ring...)
	badFormat[offFormat+6] ^= 0x01 // the version in RING_FORMAT
	otherSlot := append([]byte(nil), slot...)
	otherSlot[slotGeneration] ^= 0x01
	// Made here, before any fake hub: closed after every hub goroutine ended.
	ev := tempFile(t, nil)
	made := map[string]*os.File{}
	for name, b := range map[string][]byte{"ring": ring, "slot": slot, "badMagic": badMagic, "badFormat": badFormat,
		"otherSlot": otherSlot, "short": ring[:pageSize+100]} {
		made[name] = tempFile(t, b)
	}
	files := func(r, s string) []*os.File { return []*os.File{made[r], made[s], ev} }
	golden := goldenAttachBody(t)
	attachBody := func() []byte { return append([]byte(nil), golden...) }
	cases := []struct {
		name  string
		reply func(req []byte) fakeReply
		want  error
	}{
		{"short message", func([]byte) fakeReply { return fakeReply{msg: []byte{1, 2, 3}} }, ErrProto},
		{"bad magic", func(req []byte) fakeReply {
			m := replyTo(req, msgAttach|msgReply, attachBody())
			m[0] ^= 0xff
			return fakeReply{msg: m}
		}, ErrProto},
		{"other protocol version", func(req []byte) fakeReply {
			m := replyTo(req, msgAttach|msgReply, attachBody())
			le.PutUint16(m[2:], 9)
			return fakeReply{msg: m}
		}, ErrVersion},
		{"length not the bytes received", func(req []byte) fakeReply {
			m := replyTo(req, msgAttach|msgReply, attachBody())
			le.PutUint32(m[8:], 1000)
			return fakeReply{msg: m}
		}, ErrProto},
		{"reply to another request", func(req []byte) fakeReply {
			m := replyTo(req, msgAttach|msgReply, attachBody())
			le.PutUint32(m[12:], 77)
			return fakeReply{msg: m}
		}, ErrProto},
		{"refused", func(req []byte) fakeReply {
			body := make([]byte, errorSize, errorSize+20)
			code := -int32(syscall.EACCES)
			le.PutUint32(body, uint32(code))
			return fakeReply{msg: replyTo(req, msgError, append(body, "not allowed here"...))}
		}, syscall.EACCES},
		{"ERROR with a positive code", func(req []byte) fakeReply {
			body := make([]byte, errorSize)
			le.PutUint32(body, 5)
			return fakeReply{msg: replyTo(req, msgError, body)}
		}, ErrProto},
		{"short attach reply", func(req []byte) fakeReply {
			return fakeReply{msg: replyTo(req, msgAttach|msgReply, attachBody()[:20]), fds: files("ring", "slot")}
		}, ErrProto},
		{"no descriptors", func(req []byte) fakeReply {
			return fakeReply{msg: replyTo(req, msgAttach|msgReply, attachBody())}
		}, ErrProto},
		{"not a ring", func(req []byte) fakeReply {
			return fakeReply{msg: replyTo(req, msgAttach|msgReply, attachBody()), fds: files("badMagic", "slot")}
		}, ErrFormat},
		{"a ring of another format", func(req []byte) fakeReply {
			return fakeReply{msg: replyTo(req, msgAttach|msgReply, attachBody()), fds: files("badFormat", "slot")}
		}, ErrFormat},
		{"a ring file shorter than its capacity", func(req []byte) fakeReply {
			return fakeReply{msg: replyTo(req, msgAttach|msgReply, attachBody()), fds: files("short", "slot")}
		}, ErrFormat},
		{"a slot of another ring", func(req []byte) fakeReply {
			return fakeReply{msg: replyTo(req, msgAttach|msgReply, attachBody()), fds: files("ring", "otherSlot")}
		}, ErrFormat},
	}
	before := openFDs()
	for _, c := range cases {
		path := fakeHub(t, c.reply)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cl, err := Open(ctx, Options{Socket: path})
		cancel()
		if err == nil {
			cl.Close()
			t.Errorf("%s: Open succeeded", c.name)
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// The fake hubs' files are still open; the client's descriptors are not.
	if after := openFDs(); after > before+3*len(cases) {
		t.Errorf("%d descriptors open, %d before", after, before)
	}
}

func TestOpen_maps_a_golden_ring_from_a_fake_hub_and_closes_cleanly(t *testing.T) {
	checkGoroutines(t)
	fds := []*os.File{tempFile(t, readGolden(t, "ring.bin")), tempFile(t, readGolden(t, "slot.bin")), tempFile(t, nil)}
	body := goldenAttachBody(t)
	path := fakeHub(t, func(req []byte) fakeReply {
		return fakeReply{msg: replyTo(req, msgAttach|msgReply, body), fds: fds}
	})
	c, err := Open(context.Background(), Options{Socket: path})
	if err != nil {
		t.Fatal(err)
	}
	g := loadGolden(t)
	if st := c.Stats(); st.Generation != g.u64(t, "attach-reply.generation") || st.Revision != g.u64(t, "attach-reply.revision") {
		t.Fatalf("stats: %+v", st)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// The revision told at ATTACH may lag the hub's (it stores its published
// revision after committing to the ring): a transaction just before this
// reader's start is then in no record it will read. WaitRevision of what
// Sync said must not wait for traffic that may never come: the client asks.
func TestWaitRevision_asks_the_hub_when_the_ring_has_nothing_more_to_say(t *testing.T) {
	checkGoroutines(t)
	fds := []*os.File{tempFile(t, readGolden(t, "ring.bin")), tempFile(t, readGolden(t, "slot.bin")), tempFile(t, nil)}
	body := goldenAttachBody(t)
	told := le.Uint64(body[16:]) // the attach reply's revision
	path := fakeHub(t, func(req []byte) fakeReply {
		h, _ := parseHeader(req)
		switch h.Type {
		case msgAttach:
			return fakeReply{msg: replyTo(req, msgAttach|msgReply, body), fds: fds}
		case msgRejoin:
			b := make([]byte, rejoinReplySize)
			le.PutUint64(b, told+1)
			return fakeReply{msg: replyTo(req, msgRejoin|msgReply, b)}
		}
		return fakeReply{msg: replyTo(req, msgError, make([]byte, errorSize))}
	})
	c, err := Open(context.Background(), Options{Socket: path})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitRevision(ctx, told+1); err != nil {
		t.Fatalf("WaitRevision(%d) with revision %d told: %v (stats %+v)", told+1, told, err, c.Stats())
	}
	// Past what the hub has published: it waits (for traffic), asking once.
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if err := c.WaitRevision(short, told+2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitRevision of the future: %v", err)
	}
}

// A snapshot memfd the hub took back (cut short: protocol.h) or one of zeros
// is an error, never entries; one taken back is asked for once more.
func TestGet_a_snapshot_taken_back_or_of_zeros_is_an_error_never_entries(t *testing.T) {
	checkGoroutines(t)
	fds := []*os.File{tempFile(t, readGolden(t, "ring.bin")), tempFile(t, readGolden(t, "slot.bin")), tempFile(t, nil)}
	attach := goldenAttachBody(t)
	// One entry: key "/k", value "v", revision 7.
	entry := make([]byte, 40)
	le.PutUint64(entry[0:], 7)
	le.PutUint32(entry[16:], 2)
	le.PutUint32(entry[20:], 1)
	copy(entry[snapEntrySize:], "/kv")
	good, cut, zeros := tempFile(t, entry), tempFile(t, nil), tempFile(t, make([]byte, len(entry)))
	reply := func(req []byte, f *os.File) fakeReply {
		b := make([]byte, snapshotRepSize)
		le.PutUint64(b[0:], 7)
		le.PutUint64(b[16:], 1)
		le.PutUint64(b[24:], uint64(len(entry))) // what it held when sent
		return fakeReply{msg: replyTo(req, msgGet|msgReply, b), fds: []*os.File{f}}
	}
	var gets atomic.Int32
	var answer atomic.Value // the file the next GET gets; cut is good's taken back
	path := fakeHub(t, func(req []byte) fakeReply {
		h, _ := parseHeader(req)
		if h.Type == msgAttach {
			return fakeReply{msg: replyTo(req, msgAttach|msgReply, attach), fds: fds}
		}
		n := gets.Add(1)
		f := answer.Load().(*os.File)
		if f == good && n == 1 {
			f = cut // the first taken back, the second read in time
		}
		return reply(req, f)
	})
	c, err := Open(context.Background(), Options{Socket: path})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	answer.Store(cut)
	if e, err := c.Get(ctx, 0, "/k"); !errors.Is(err, syscall.ESTALE) || !strings.Contains(err.Error(), "took it back") {
		t.Fatalf("a snapshot cut short: %+v, %v", e, err)
	}
	if n := gets.Swap(0); n != 2 {
		t.Fatalf("%d GETs for a snapshot taken back, want 2 (one more)", n)
	}
	answer.Store(zeros)
	if e, err := c.Get(ctx, 0, "/k"); !errors.Is(err, ErrProto) {
		t.Fatalf("a snapshot of zeros: %+v, %v", e, err)
	}
	gets.Store(0)
	answer.Store(good)
	e, err := c.Get(ctx, 0, "/k")
	if err != nil || e.Key != "/k" || string(e.Value) != "v" || e.Revision != 7 {
		t.Fatalf("taken back once, then read: %+v, %v", e, err)
	}
	if n := gets.Load(); n != 2 {
		t.Fatalf("%d GETs, want 2", n)
	}
}
