// SPDX-License-Identifier: Apache-2.0

// Package e2e is the Go side of the end-to-end benchmark's run-file protocol
// (bench/bench_e2e.h): a subscriber maps the run file, writes its stats slot
// and its deliver_ns slice, and keeps the same gaps / announced /
// out_of_order accounting as th__e2e_* in bench/bench_e2e.c, line for line.
// A writer stamps each seq's send and commit-return times.
package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const (
	Magic     = 0x31455f4255484f54 // "TOHUB_E1" little-endian
	ValueHdr  = 37
	statsOff  = 4096
	statBytes = 128
)

// Header offsets (struct e2e_hdr).
const (
	hMagic        = 0
	hNsubs        = 8
	hMaxSeq       = 16
	hTotal        = 24
	hWriterDone   = 32
	hStop         = 40
	hReady        = 48
	hWriterStart  = 56
	hWriterEnd    = 64
	hCommitOff    = 72
	hDeliverOff   = 80
	hDeliverStr   = 88
	hCommittedSeq = 104
)

// Stat slot offsets (struct e2e_sub_stat).
const (
	sReceived    = 0
	sLastSeq     = 8
	sGaps        = 16
	sAnnounced   = 24
	sOutOfOrder  = 32
	sResyncs     = 40
	sErrors      = 48
	sReady       = 56
	sPid         = 64
	sResyncNs    = 72
	sSyncedNs    = 80
	sEvictReason = 88
)

// Run is a mapped run file.
type Run struct {
	mem []byte
}

// Map maps an existing run file read-write.
func Map(path string) (*Run, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < statsOff {
		return nil, fmt.Errorf("e2e: %s: not a run file", path)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	r := &Run{mem: mem}
	if atomic.LoadUint64(r.u64(hMagic)) != Magic {
		syscall.Munmap(mem)
		return nil, fmt.Errorf("e2e: %s: bad magic", path)
	}
	return r, nil
}

func (r *Run) u64(off uint64) *uint64 {
	if off+8 > uint64(len(r.mem)) {
		panic("e2e: run file offset out of range")
	}
	return (*uint64)(unsafe.Pointer(&r.mem[off]))
}

func (r *Run) Nsubs() uint32  { return *(*uint32)(unsafe.Pointer(&r.mem[hNsubs])) }
func (r *Run) MaxSeq() uint64 { return atomic.LoadUint64(r.u64(hMaxSeq)) }
func (r *Run) Stopping() bool { return atomic.LoadUint64(r.u64(hStop)) != 0 }
func (r *Run) Ready() uint64  { return atomic.LoadUint64(r.u64(hReady)) }
func (r *Run) Total() uint64  { return atomic.LoadUint64(r.u64(hTotal)) }
func (r *Run) stat(i uint32, off uint64) *uint64 {
	return r.u64(statsOff + uint64(i)*statBytes + off)
}

// Commit returns the slot pair (send, commit-return) of seq.
func (r *Run) commit(seq uint64) (*uint64, *uint64) {
	base := atomic.LoadUint64(r.u64(hCommitOff)) + seq*16
	return r.u64(base), r.u64(base + 8)
}

// Deliver returns subscriber i's deliver_ns slice (max_seq + 1 entries).
func (r *Run) Deliver(i uint32) []uint64 {
	off := atomic.LoadUint64(r.u64(hDeliverOff)) + uint64(i)*atomic.LoadUint64(r.u64(hDeliverStr))
	n := r.MaxSeq() + 1
	if off+n*8 > uint64(len(r.mem)) {
		panic("e2e: deliver slice out of range")
	}
	return unsafe.Slice((*uint64)(unsafe.Pointer(&r.mem[off])), n)
}

// CommitTimes reads seq's (send, commit-return) times.
func (r *Run) CommitTimes(seq uint64) (uint64, uint64) {
	a, b := r.commit(seq)
	return atomic.LoadUint64(a), atomic.LoadUint64(b)
}

// ---- the clock ----------------------------------------------------------------

// Go's monotonic clock is CLOCK_MONOTONIC read through the vDSO, but time
// exposes it only relative to a time.Time; one raw clock_gettime at start
// ties the two (as the client's monotonicNow does).
var monoBase, timeBase = func() (int64, time.Time) {
	best := int64(1 << 62)
	var base int64
	var tb time.Time
	for i := 0; i < 5; i++ {
		t0 := time.Now()
		var ts syscall.Timespec
		syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1 /* CLOCK_MONOTONIC */, uintptr(unsafe.Pointer(&ts)), 0)
		d := time.Since(t0)
		if int64(d) < best {
			best = int64(d)
			base = ts.Nano() - int64(d)/2
			tb = t0
		}
	}
	return base, tb
}()

// NowNs is CLOCK_MONOTONIC in ns, as th_now_ns.
func NowNs() uint64 { return uint64(monoBase + int64(time.Since(timeBase))) }

// ---- values --------------------------------------------------------------------

// ParseSeq is th__e2e_parse_seq: the seq of a value, or -1.
func ParseSeq(v []byte) int64 {
	if len(v) < ValueHdr || string(v[:4]) != "e2e " {
		return -1
	}
	var seq int64
	for i := 4; i < 16; i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return -1
		}
		seq = seq*10 + int64(c-'0')
	}
	return seq
}

// MakeHeader writes the e2e header of seq into buf[:ValueHdr] (th__e2e_make_value
// without the padding: the caller fills the rest).
func MakeHeader(buf []byte, seq, stamp uint64) {
	s := fmt.Sprintf("e2e %012d %019d ", seq, stamp)
	copy(buf, s)
}

// ---- the subscriber's checks ------------------------------------------------------

// Sub is one subscriber's checker (struct e2e_sub).
type Sub struct {
	Run         *Run
	Idx         uint32
	Prefix      string // without a trailing '/'
	deliver     []uint64
	afterResync bool
	lastSeq     uint64
	maxSeq      uint64
}

// NewSub is th__e2e_sub_init.
func NewSub(path string, idx uint32, prefix string) (*Sub, error) {
	r, err := Map(path)
	if err != nil {
		return nil, err
	}
	if idx >= r.Nsubs() {
		return nil, errors.New("e2e sub: index " + strconv.Itoa(int(idx)) + " out of range")
	}
	for len(prefix) > 0 && prefix[len(prefix)-1] == '/' {
		prefix = prefix[:len(prefix)-1]
	}
	s := &Sub{Run: r, Idx: idx, Prefix: prefix, deliver: r.Deliver(idx), maxSeq: r.MaxSeq()}
	// Touch our deliver stamps' pages now: a first write to a page of the
	// run file is a page fault, which would count in the latency of the
	// delivery that makes it (bench_e2e.c's th__e2e_sub_init).
	for q := 0; q < len(s.deliver); q += 512 {
		atomic.StoreUint64(&s.deliver[q], 0)
	}
	atomic.StoreUint64(&s.deliver[len(s.deliver)-1], 0) // the last page, if partly past the stride
	atomic.StoreUint64(r.stat(idx, sPid), uint64(os.Getpid()))
	return s, nil
}

// UnderPrefix is th__e2e_under_prefix.
func (s *Sub) UnderPrefix(key string) bool {
	return len(key) >= len(s.Prefix) && key[:len(s.Prefix)] == s.Prefix &&
		(len(key) == len(s.Prefix) || key[len(s.Prefix)] == '/')
}

// Value is th__e2e_value: a delivered put of one value.
func (s *Sub) Value(v []byte) {
	now := NowNs()
	seq := ParseSeq(v)
	if seq < 0 {
		atomic.AddUint64(s.Run.stat(s.Idx, sErrors), 1)
		return
	}
	if seq == 0 {
		return // the setup value
	}
	u := uint64(seq)
	if u > s.maxSeq {
		atomic.AddUint64(s.Run.stat(s.Idx, sErrors), 1)
		return
	}
	if u <= s.lastSeq {
		atomic.AddUint64(s.Run.stat(s.Idx, sOutOfOrder), 1)
		if atomic.LoadUint64(&s.deliver[u]) == 0 {
			atomic.StoreUint64(&s.deliver[u], now)
		}
		return
	}
	if skipped := u - s.lastSeq - 1; skipped != 0 {
		if s.afterResync {
			atomic.AddUint64(s.Run.stat(s.Idx, sAnnounced), skipped)
		} else {
			atomic.AddUint64(s.Run.stat(s.Idx, sGaps), skipped)
		}
	}
	s.afterResync = false
	atomic.StoreUint64(&s.deliver[u], now)
	s.lastSeq = u
	atomic.AddUint64(s.Run.stat(s.Idx, sReceived), 1)
	atomic.StoreUint64(s.Run.stat(s.Idx, sLastSeq), u)
}

// Deliver records a delivery of seq without the in-order checks: the
// Vitess-shaped scenario, where a process sees only its own keys.
func (s *Sub) DeliverOnly(v []byte) {
	now := NowNs()
	seq := ParseSeq(v)
	if seq <= 0 || uint64(seq) > s.maxSeq {
		if seq < 0 {
			atomic.AddUint64(s.Run.stat(s.Idx, sErrors), 1)
		}
		return
	}
	if atomic.LoadUint64(&s.deliver[seq]) == 0 {
		atomic.StoreUint64(&s.deliver[seq], now)
	}
	atomic.AddUint64(s.Run.stat(s.Idx, sReceived), 1)
	if uint64(seq) > s.lastSeq {
		s.lastSeq = uint64(seq)
		atomic.StoreUint64(s.Run.stat(s.Idx, sLastSeq), uint64(seq))
	}
}

// Resync is th__e2e_resync.
func (s *Sub) Resync(reason uint32) {
	s.afterResync = true
	atomic.CompareAndSwapUint64(s.Run.stat(s.Idx, sResyncNs), 0, NowNs())
	atomic.StoreUint64(s.Run.stat(s.Idx, sEvictReason), uint64(reason))
	atomic.AddUint64(s.Run.stat(s.Idx, sResyncs), 1)
}

// Synced is th__e2e_synced.
func (s *Sub) Synced() {
	if atomic.LoadUint64(s.Run.stat(s.Idx, sResyncNs)) != 0 {
		atomic.CompareAndSwapUint64(s.Run.stat(s.Idx, sSyncedNs), 0, NowNs())
	}
}

// Ready is th__e2e_ready.
func (s *Sub) Ready() {
	if atomic.SwapUint64(s.Run.stat(s.Idx, sReady), 1) == 0 {
		atomic.AddUint64(s.Run.u64(hReady), 1)
	}
}

// Stopping is th__e2e_stopping.
func (s *Sub) Stopping() bool { return s.Run.Stopping() }

// Error is th__e2e_error: counted, and one line on stderr.
func (s *Sub) Error(format string, a ...any) {
	atomic.AddUint64(s.Run.stat(s.Idx, sErrors), 1)
	fmt.Fprintf(os.Stderr, "e2e sub %d: %s\n", s.Idx, fmt.Sprintf(format, a...))
}

// ---- the writer's side ----------------------------------------------------------

// WaitReady waits until every subscriber is ready (the C writer's wait).
func (r *Run) WaitReady(timeout time.Duration) bool {
	end := time.Now().Add(timeout)
	for r.Ready() < uint64(r.Nsubs()) {
		if time.Now().After(end) {
			atomic.StoreUint64(r.u64(hWriterDone), 2)
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

func (r *Run) SetWriterStart(ns uint64) { atomic.StoreUint64(r.u64(hWriterStart), ns) }

// Committed records seq's send and commit-return times.
func (r *Run) Committed(seq, before, after uint64) {
	a, b := r.commit(seq)
	atomic.StoreUint64(a, before)
	atomic.StoreUint64(b, after)
	atomic.StoreUint64(r.u64(hCommittedSeq), seq)
}

// WriterDone publishes the total and the end time.
func (r *Run) WriterDone(total, end uint64) {
	atomic.StoreUint64(r.u64(hTotal), total)
	atomic.StoreUint64(r.u64(hWriterEnd), end)
	atomic.StoreUint64(r.u64(hWriterDone), 1)
}

// SubFlags are the options every subscriber program takes (as `topohub-bench e2e sub`).
type SubFlags struct {
	System, File, Prefix, HubSocket, Etcd string
	Index, TimeoutMs                      uint
}

func (o *SubFlags) Register(fs interface {
	StringVar(*string, string, string, string)
	UintVar(*uint, string, uint, string)
}) {
	fs.StringVar(&o.System, "system", "", "system")
	fs.StringVar(&o.File, "file", "", "run file")
	fs.UintVar(&o.Index, "index", 0, "subscriber index")
	fs.StringVar(&o.Prefix, "prefix", "/bench/e2e", "prefix watched")
	fs.StringVar(&o.HubSocket, "hub-socket", "", "topohubd's control socket")
	fs.UintVar(&o.TimeoutMs, "timeout-ms", 1000, "slow-consumer timeout asked of the hub")
	fs.StringVar(&o.Etcd, "etcd", "", "etcd client URL")
}

// StopWatcher calls cancel once the driver stops the run: it sends SIGTERM
// to the Go programs when it sets the run file's stop flag. A timer that polls
// the flag often is not free in Go (each wake-up of the timer also keeps the
// runtime's sysmon thread awake), and it would count in every Go program's
// idle CPU, so the flag is only looked at once a second, in case a signal is
// missed.
func (s *Sub) StopWatcher(cancel func()) {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for !s.Stopping() {
			select {
			case <-term:
				cancel()
				return
			case <-t.C:
			}
		}
		cancel()
	}()
}

// ContNs is when the driver sent SIGCONT to a stopped subscriber (0: never).
func (r *Run) ContNs() uint64 { return atomic.LoadUint64(r.u64(96)) }

// StatResyncs reads subscriber i's resync count.
func (r *Run) StatResyncs(i uint32) uint64 { return atomic.LoadUint64(r.stat(i, sResyncs)) }
