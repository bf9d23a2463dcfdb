// SPDX-License-Identifier: Apache-2.0

package topohub

// The reader side of shm/ring.c, over the same mappings: the ring memfd
// mapped PROT_READ, the slot page mapped read-write. Every access to shared
// words is a sync/atomic operation, and each names the C access it pairs
// with. Go's atomics are sequentially consistent: each load is at least the
// load-acquire, each store at least the store-release, and a store followed
// by a load is ordered as ring.c's seq_cst fence orders them.
//
// Layout (ring.c's struct ring_header and struct slot_page, pinned by the
// golden vectors):
//
//	ring page 0: magic 0, format 8, generation 16, capacity 24, data_offset 32,
//	             initial_pos 40, max_record 48 (u32); head 64, reclaim 72; closed 128 (u32),
//	             wake_delay_ns 136
//	ring page 1..: the data words; the record at p starts at word (p/8) & (capacity/8 - 1):
//	             word 0 len | type<<32 | flags<<48, word 1 publish time (CLOCK_MONOTONIC ns), payload
//	slot page:   read_pos 0; sleep_word 64 (u32), evict_ack 68 (u32), timeout_ns 72,
//	             filter_word 80 (u32), wake_any 84 (u32); filter 128..191 (8 words);
//	             evict_seq 192, evict_reason 196, evictions 200, wake_seq 204 (u32s);
//	             skip_seq 256 (u32), skip_from 264, skip_to 272, skip_note 280; magic 320, generation 328

import (
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const (
	ringMagic     = 0x31474e4952485423 // "#THRING1"
	slotMagic     = 0x31544f4c53485423 // "#THSLOT1"
	ringVersion   = 2
	recordHeader  = 16
	pageSize      = 4096
	ringHeaderLen = 192 // sizeof(struct ring_header)
	slotPageLen   = 384 // sizeof(struct slot_page)
	// RING_FORMAT: version, record header, header and slot sizes, 64-bit.
	ringFormat = ringVersion<<48 | recordHeader<<32 | ringHeaderLen<<16 | slotPageLen<<4 | 1

	offMagic, offFormat, offGeneration, offCapacity = 0, 8, 16, 24
	offDataOffset, offInitialPos, offMaxRecord      = 32, 40, 48
	offHead, offReclaim, offClosed                  = 64, 72, 128
	offWakeDelay                                    = 136

	slotReadPos, slotSleepWord, slotEvictAck, slotTimeout = 0, 64, 68, 72
	slotFilterWord, slotWakeAny, slotFilter               = 80, 84, 128
	slotEvictSeq, slotEvictReason, slotEvictions          = 192, 196, 200
	slotWakeSeq                                           = 204
	slotSkipSeq, slotSkipFrom, slotSkipTo, slotSkipNote   = 256, 264, 272, 280
	slotMagicOff, slotGeneration                          = 320, 328

	tagWords = 8 // TH_RING_TAG_WORDS
	filterOn = 1 // FILTER_ON in filter_word

	sleeping = 1 // SLEEPING
	sleepFD  = 2 // SLEEP_FD
	sleepGen = 4 // SLEEP_GEN: the generation counts above the flags

	ringFlagBatchEnd = 0x0001 // TH_RING_F_BATCH_END

	// Moderation (ring.c): below this a delay is not worth a timer; a
	// header's delay is bounded by this whatever it says.
	wakeDelayMin = 50000
	maxNap       = 100000000

	evictNone, evictSlow, evictLapped, evictAdmin, evictShutdown = 0, 1, 2, 3, 4
)

// Results of ringReader.read besides a record.
type readStatus int

const (
	readRecord  readStatus = iota // a record
	readEmpty                     // nothing new
	readEvicted                   // TH_EEVICTED (sticky until rejoin)
	readLapped                    // TH_ELAPPED (sticky until rejoin)
	readClosed                    // TH_ECLOSED
	readCorrupt                   // TH_ECORRUPT: a header inconsistent while intact
)

type ringRecord struct {
	Pos       uint64
	PublishNs uint64 // CLOCK_MONOTONIC of the batch
	Type      uint16
	Flags     uint16
	Payload   []byte // valid until the next read
}

type ringReader struct {
	ring, slot []byte // the mappings (or, in tests, aligned copies)
	data       []byte // ring[pageSize : pageSize+capacity]
	capacity   uint64
	maskWords  uint64
	maxRecord  uint32
	generation uint64
	unmap      func()

	pos      uint64
	head     uint64
	evictAck uint32
	sleepGen uint32
	wakeSeen uint32     // wake_seq loaded before the sleeping flag was set
	filters  uint32     // filter changes so far (filter_word >> 1)
	atBatch  bool       // pos is a batch start (or the head)
	skips    uint64     // jumps over batches the hub did not wake us for
	skipNote uint64     // the note (revision) of the last batch of the last jump
	sticky   readStatus // readEvicted / readLapped until rejoin; readRecord = none
	buf      []byte

	// Moderation, as ring.c's reader: our bound on the writer's delay, when
	// we were last woken (monotonic ns), whether the stream is busy (woken
	// again within the delay), naps taken.
	maxDelay uint64
	wokeNs   uint64
	napUntil uint64 // the end of the nap last counted
	busy     bool
	naps     uint64
}

func u64(b []byte, off uint64) *uint64 { return (*uint64)(unsafe.Pointer(&b[off])) }
func u32(b []byte, off uint64) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }

// openRing maps the ring and slot descriptors (not consumed: the caller
// closes them) and checks them as th_ring_reader_open does.
func openRing(ringFD, slotFD int) (*ringReader, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(ringFD, &st); err != nil {
		return nil, err
	}
	if st.Size < pageSize {
		return nil, fmt.Errorf("%w: ring segment is %d bytes, smaller than its header", ErrFormat, st.Size)
	}
	hdr, err := syscall.Mmap(ringFD, 0, pageSize, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("topohub: mapping the ring header: %w", err)
	}
	capacity, err := checkRingHeader(hdr, uint64(st.Size))
	syscall.Munmap(hdr)
	if err != nil {
		return nil, err
	}
	if err := syscall.Fstat(slotFD, &st); err != nil {
		return nil, err
	}
	if st.Size < pageSize {
		return nil, fmt.Errorf("%w: slot page is %d bytes", ErrFormat, st.Size)
	}
	ring, err := syscall.Mmap(ringFD, 0, int(pageSize+capacity), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("topohub: mapping the ring: %w", err)
	}
	slot, err := syscall.Mmap(slotFD, 0, pageSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		syscall.Munmap(ring)
		return nil, fmt.Errorf("topohub: mapping the slot: %w", err)
	}
	r, err := newRingReader(ring, slot)
	if err != nil {
		syscall.Munmap(ring)
		syscall.Munmap(slot)
		return nil, err
	}
	r.unmap = func() { syscall.Munmap(ring); syscall.Munmap(slot) }
	return r, nil
}

// checkRingHeader returns the capacity of a ring whose file is fileSize bytes.
func checkRingHeader(h []byte, fileSize uint64) (uint64, error) {
	if len(h) < ringHeaderLen {
		return 0, fmt.Errorf("%w: ring header of %d bytes", ErrFormat, len(h))
	}
	// Constants after creation, published by the store-release of head in
	// th_ring_writer_create (the descriptor came after it).
	if m := le.Uint64(h[offMagic:]); m != ringMagic {
		return 0, fmt.Errorf("%w: not a topohub ring (magic %#x, expected %#x)", ErrFormat, m, uint64(ringMagic))
	}
	if f := le.Uint64(h[offFormat:]); f != ringFormat {
		return 0, fmt.Errorf("%w: ring format %#x is not this client's %#x (version, header or slot layout differ)",
			ErrFormat, f, uint64(ringFormat))
	}
	c := le.Uint64(h[offCapacity:])
	if le.Uint64(h[offDataOffset:]) != pageSize || c < pageSize || c&(c-1) != 0 || c > 1<<40 ||
		uint64(le.Uint32(h[offMaxRecord:])) > c/4 || fileSize < pageSize+c {
		return 0, fmt.Errorf("%w: ring geometry is inconsistent (capacity %d, file %d bytes)", ErrFormat, c, fileSize)
	}
	return c, nil
}

// newRingReader reads a ring and slot already in memory (8-byte aligned).
func newRingReader(ring, slot []byte) (*ringReader, error) {
	c, err := checkRingHeader(ring, uint64(len(ring)))
	if err != nil {
		return nil, err
	}
	if len(slot) < slotPageLen {
		return nil, fmt.Errorf("%w: slot page of %d bytes", ErrFormat, len(slot))
	}
	if uintptr(unsafe.Pointer(&ring[0]))%8 != 0 || uintptr(unsafe.Pointer(&slot[0]))%8 != 0 {
		return nil, fmt.Errorf("%w: unaligned mapping", ErrFormat)
	}
	gen := le.Uint64(ring[offGeneration:])
	if le.Uint64(slot[slotMagicOff:]) != slotMagic || le.Uint64(slot[slotGeneration:]) != gen {
		return nil, fmt.Errorf("%w: slot page does not belong to this ring (generation %d, ring %d)",
			ErrFormat, le.Uint64(slot[slotGeneration:]), gen)
	}
	r := &ringReader{ring: ring, slot: slot, data: ring[pageSize : pageSize+c], capacity: c, maskWords: c/8 - 1,
		maxRecord: le.Uint32(ring[offMaxRecord:]), generation: gen, sticky: readRecord, maxDelay: math.MaxUint64}
	// The reader's own words, as th_ring_reader_open loads them (relaxed):
	// the hub set read_pos to the head before handing the slot over.
	r.pos = atomic.LoadUint64(u64(slot, slotReadPos))
	// Pairs with the store-release of head in create/commit.
	r.head = atomic.LoadUint64(u64(ring, offHead))
	r.evictAck = atomic.LoadUint32(u32(slot, slotEvictAck))
	r.sleepGen = atomic.LoadUint32(u32(slot, slotSleepWord)) / sleepGen
	r.filters = atomic.LoadUint32(u32(slot, slotFilterWord)) >> 1
	if r.pos > r.head || r.pos%8 != 0 {
		r.pos = r.head
	}
	r.atBatch = true // a slot is handed over at the head, or where a batch ended
	return r, nil
}

func (r *ringReader) close() {
	if r.unmap != nil {
		r.unmap()
		r.unmap = nil
	}
}

func (r *ringReader) word(i uint64) uint64 {
	// Relaxed in ring.c (words_to_bytes); racy by design, checked after.
	return atomic.LoadUint64(u64(r.data, (i&r.maskWords)*8))
}

// copyWords copies n words of the ring from word index w into buf, each
// with an atomic load (relaxed in ring.c's words_to_bytes: racy by design,
// checked after) and stored as it is in memory, as memcpy would: through
// word views of both sides, in at most two runs (the ring wraps once).
func (r *ringReader) copyWords(buf []byte, w, n uint64) {
	dst := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(buf))), n)
	for len(dst) > 0 {
		i := w & r.maskWords
		run := min(uint64(len(dst)), r.maskWords+1-i)
		src := unsafe.Slice((*uint64)(unsafe.Pointer(&r.data[i*8])), run)
		for j := range src {
			dst[j] = atomic.LoadUint64(&src[j])
		}
		dst, w = dst[run:], w+run
	}
}

func (r *ringReader) loadHead() uint64 {
	// Pairs with the store-release of head in th_ring_commit().
	return atomic.LoadUint64(u64(r.ring, offHead))
}

func (r *ringReader) closed() bool {
	// Pairs with the store-release of closed in th_ring_writer_destroy().
	return atomic.LoadUint32(u32(r.ring, offClosed)) != 0
}

func (r *ringReader) evicted() bool {
	// Pairs with the store-release of evict_seq in th_ring_evict().
	return atomic.LoadUint32(u32(r.slot, slotEvictSeq)) != r.evictAck
}

func (r *ringReader) evictReason() uint32 {
	return atomic.LoadUint32(u32(r.slot, slotEvictReason)) // relaxed in ring.c; made visible by evict_seq
}

// read copies the next record out (th_ring_read): copy, then check against
// the reclaim position, so a record the writer may be overwriting is never
// handed out.
func (r *ringReader) read() (ringRecord, readStatus) {
	if r.sticky != readRecord {
		return ringRecord{}, r.sticky
	}
	if r.evicted() {
		r.sticky = readEvicted
		return ringRecord{}, readEvicted
	}
	p := r.pos
	if p == r.head {
		r.head = r.loadHead()
		if p == r.head {
			if r.closed() && p == r.loadHead() {
				return ringRecord{}, readClosed
			}
			return ringRecord{}, readEmpty
		}
	}
	if r.atBatch && r.skip() {
		if p = r.pos; p == r.head {
			return ringRecord{}, readEmpty
		}
	}
	w := p / 8
	w0 := r.word(w)
	t := r.word(w + 1)
	n := uint32(w0)
	size := (uint64(recordHeader) + uint64(n) + 7) &^ 7
	sane := n <= r.maxRecord && size <= r.head-p
	if sane {
		if uint64(cap(r.buf)) < uint64(n)+8 {
			r.buf = make([]byte, n+8)
		}
		r.copyWords(r.buf[:cap(r.buf)], w+2, (uint64(n)+7)/8)
	}
	// Pairs with the release fence in reclaim_for(): if a word copied above
	// was overwritten, this load sees the reclaim position that announced it
	// (the loads above are atomic and ordered before this one).
	if p < atomic.LoadUint64(u64(r.ring, offReclaim)) {
		r.sticky = readLapped
		return ringRecord{}, readLapped
	}
	if !sane {
		return ringRecord{}, readCorrupt
	}
	r.pos = p + size
	r.atBatch = uint16(w0>>48)&ringFlagBatchEnd != 0
	// For the writer's lag reports only (relaxed in ring.c).
	atomic.StoreUint64(u64(r.slot, slotReadPos), r.pos)
	return ringRecord{Pos: p, PublishNs: t, Type: uint16(w0 >> 32), Flags: uint16(w0 >> 48), Payload: r.buf[:n]}, readRecord
}

// skip jumps over the batches the hub did not wake us for, when its hint in
// our slot says r.pos is among them (reader_skip in ring.c): a seqlock read
// of the hint; its end must be a position the ring has published. A forged
// hint misleads only this reader.
func (r *ringReader) skip() bool {
	var from, to, note uint64
	for {
		v := atomic.LoadUint32(u32(r.slot, slotSkipSeq)) // pairs with seq_end()
		from = atomic.LoadUint64(u64(r.slot, slotSkipFrom))
		to = atomic.LoadUint64(u64(r.slot, slotSkipTo))
		note = atomic.LoadUint64(u64(r.slot, slotSkipNote))
		// Go's loads are ordered as the acquire fence orders them.
		if v&1 == 0 && atomic.LoadUint32(u32(r.slot, slotSkipSeq)) == v {
			break
		}
		runtime.Gosched()
	}
	if !(from <= r.pos && r.pos < to) || to%8 != 0 {
		return false
	}
	if to > r.head {
		r.head = r.loadHead()
	}
	if to > r.head {
		return false
	}
	r.pos = to
	r.skips++
	r.skipNote = note
	atomic.StoreUint64(u64(r.slot, slotReadPos), to) // relaxed in ring.c: the writer's lag reports
	return true
}

// setFilter: be woken only for batches whose tags meet filter, or for every
// batch (nil) (th_ring_reader_set_filter). The words, then the word that
// announces them; Go's seq_cst store then the caller's head load are the
// Dekker handshake with commit's fence.
func (r *ringReader) setFilter(filter *[tagWords]uint64) {
	on := uint32(0)
	if filter != nil {
		for i, v := range filter {
			atomic.StoreUint64(u64(r.slot, slotFilter+uint64(i)*8), v)
		}
		on = filterOn
	}
	r.filters++
	atomic.StoreUint32(u32(r.slot, slotFilterWord), r.filters<<1|on)
}

// ready: something may be read (reader_ready in ring.c).
func (r *ringReader) ready() bool {
	return r.sticky != readRecord || r.loadHead() != r.pos || r.evicted() || r.closed()
}

// readyForUs is ready less the batches the hub did not wake us for: a wait
// jumps over them, as read would, instead of ending on them (reader_ready_for_us
// in ring.c: a client filtered away from a busy ring would otherwise return
// from every slice as if there were work).
func (r *ringReader) readyForUs() bool {
	if r.sticky != readRecord || r.evicted() || r.closed() {
		return true
	}
	if r.loadHead() == r.pos {
		return false
	}
	if r.atBatch && r.skip() {
		return r.loadHead() != r.pos
	}
	return true
}

// prepareSleep sets the sleeping flag, then looks again: the Dekker
// handshake with th_ring_commit (head store; fence; sleep_word load). Go's
// store then load are sequentially consistent, as the seq_cst fence in
// reader_prepare_sleep orders them. Returns whether to skip the sleep
// (something to read after all).
func (r *ringReader) prepareSleep(modeBit uint32) bool {
	r.sleepGen++
	// Before the flag: a wake-up for this sleep bumps it after it sees the
	// flag. Pairs with the store-release in wake_futex().
	r.wakeSeen = atomic.LoadUint32(u32(r.slot, slotWakeSeq))
	atomic.StoreUint32(u32(r.slot, slotSleepWord), r.sleepGen*sleepGen|modeBit|sleeping)
	return r.loadHead() != r.pos || r.sticky != readRecord || r.evicted() || r.closed()
}

func (r *ringReader) endSleep() {
	atomic.StoreUint32(u32(r.slot, slotSleepWord), r.sleepGen*sleepGen) // reader_end_sleep
}

// delay is what this reader naps for when busy (reader_delay in ring.c):
// the writer's advice within our bound, 0 when too small for a timer.
func (r *ringReader) delay() uint64 {
	d := atomic.LoadUint64(u64(r.ring, offWakeDelay)) // relaxed in ring.c: advice, any value is safe
	d = min(d, r.maxDelay, maxNap)
	if d < wakeDelayMin {
		return 0
	}
	return d
}

// woken: a wait ended with something to read; were we woken again within
// the delay of the previous wake-up (reader_woken)?
func (r *ringReader) woken(now uint64) {
	d := r.delay()
	r.busy = d > 0 && now-r.wokeNs < d
	r.wokeNs = now
}

func (r *ringReader) setMaxDelay(ns uint64) {
	r.maxDelay = ns
	if r.delay() == 0 {
		r.busy = false
	}
}

// napping: the next futex wait naps (and does not spin).
func (r *ringReader) napping() bool { return r.busy && r.delay() > 0 }

// napEnd: when a busy reader's nap ends (its previous wake-up plus the
// delay); 0 when it would not nap (nap_end in ring.c).
func (r *ringReader) napEnd() uint64 {
	if !r.busy {
		return 0
	}
	if d := r.delay(); d > 0 {
		return r.wokeNs + d
	}
	return 0
}

// napFrom begins a busy reader's nap at now: its end (at or before now:
// none), each nap counted once however many waits it takes.
func (r *ringReader) napFrom(now uint64) uint64 {
	until := r.napEnd()
	if until > now && until != r.napUntil {
		r.napUntil = until
		r.naps++
	}
	return until
}

// napOver: a nap until `until` ended at now. ready: something came (still
// busy: the next wait naps again). cut: it ended early (kicked, or the
// caller's slice) and the wait returns. Neither: nothing came, the stream
// is quiet, and the wait sleeps until woken.
func (r *ringReader) napOver(until, now uint64, kicked bool) (ready, cut bool) {
	if r.readyForUs() {
		r.wokeNs = now
		return true, false
	}
	if kicked || until > now {
		return false, true
	}
	r.busy = false
	return false, false
}

// napLeft: how long the next futex wait would nap at now (0: it would not);
// the caller's slice is at least this, so that one nap is one sleep.
func (r *ringReader) napLeft(now uint64) time.Duration {
	if until := r.napEnd(); until > now {
		return time.Duration(until - now)
	}
	return 0
}

// waitFutex sleeps on the slot's wake_seq until something may be ready or
// the timeout: non-private futex words (the writer is another process), as
// th_ring_wait does. A busy stream (see Moderation in ring.c) first naps
// until the previous wake-up plus the writer's delay, without the sleeping
// flag, and returns if that brought something; now is the client's
// monotonic clock.
func (r *ringReader) waitFutex(timeout time.Duration, kick *atomic.Uint32, kickVal uint32, now func() uint64) bool {
	evictSeq := unsafe.Pointer(&r.slot[slotEvictSeq])
	if r.busy {
		// A nap cut short by the timeout goes on in the next wait: ending it
		// would have the writer wake us for the next commit.
		t := now()
		until := r.napFrom(t)
		end := t + uint64(timeout)
		for until > t && t < end && !r.readyForUs() && kick.Load() == kickVal {
			sleepOn(nil, 0, evictSeq, r.evictAck, kick, kickVal, time.Duration(min(until, end)-t))
			t = now()
		}
		if ready, cut := r.napOver(until, t, kick.Load() != kickVal); ready || cut {
			return ready
		}
	}
	if r.prepareSleep(0) {
		r.endSleep()
		return true
	}
	sleepOn(unsafe.Pointer(&r.slot[slotWakeSeq]), r.wakeSeen, evictSeq, r.evictAck, kick, kickVal, timeout)
	r.endSleep()
	if r.readyForUs() {
		r.woken(now())
		return true
	}
	return false
}

// futexWaitv is struct futex_waitv of <linux/futex.h>.
type futexWaitv struct {
	val      uint64
	uaddr    uint64
	flags    uint32
	reserved uint32
}

const (
	sysFutexWaitv  = 449 // futex_waitv(2), Linux 5.16, the same number on amd64 and arm64
	futex2SizeU32  = 0x02
	futex2Private  = 128 // FUTEX2_PRIVATE: the kick word is this process's own
	clockMonotonic = 1
)

// sleepOn is ring.c's sleep_on() with the client's own kick word: sleep
// until the slot's wake_seq moves off seen (unless wakeSeq is nil: a nap,
// which commits do not end), its evict_seq moves off ack, kick moves off
// kickVal, a wake-up, or the timeout. The writer wakes a reader's own slot
// words only (a commit it wants, its eviction), so the words are waited on
// with futex_waitv; without it (ENOSYS), one word alone in slices of at most
// 10 ms, so that an eviction or a kick is seen within 10 ms, as evictions
// are in C.
func sleepOn(wakeSeq unsafe.Pointer, seen uint32, evictSeq unsafe.Pointer, ack uint32, kick *atomic.Uint32, kickVal uint32,
	timeout time.Duration) {
	wv := [3]futexWaitv{
		{val: uint64(ack), uaddr: uint64(uintptr(evictSeq)), flags: futex2SizeU32},
		{val: uint64(kickVal), uaddr: uint64(uintptr(unsafe.Pointer(kick))), flags: futex2SizeU32 | futex2Private},
	}
	n := 2
	if wakeSeq != nil {
		wv[n] = futexWaitv{val: uint64(seen), uaddr: uint64(uintptr(wakeSeq)), flags: futex2SizeU32}
		n++
	}
	var now syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&now)), 0)
	abs := syscall.NsecToTimespec(now.Nano() + int64(timeout))
	_, _, errno := syscall.Syscall6(sysFutexWaitv, uintptr(unsafe.Pointer(&wv[0])), uintptr(n), 0,
		uintptr(unsafe.Pointer(&abs)), clockMonotonic, 0)
	runtime.KeepAlive(kick)
	if errno != syscall.ENOSYS {
		return
	}
	if timeout > 10*time.Millisecond {
		timeout = 10 * time.Millisecond
	}
	ts := syscall.NsecToTimespec(int64(timeout))
	word, val := wakeSeq, seen
	if word == nil {
		word, val = evictSeq, ack
	}
	syscall.Syscall6(syscall.SYS_FUTEX, uintptr(word), 0 /* FUTEX_WAIT */, uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// futexWakePrivate wakes the thread sleeping on a process-private futex word.
func futexWakePrivate(word *atomic.Uint32) {
	syscall.Syscall6(syscall.SYS_FUTEX, uintptr(unsafe.Pointer(word)), 1|128 /* FUTEX_WAKE | FUTEX_PRIVATE_FLAG */, 1, 0, 0, 0)
}

// rejoin moves to the head and acknowledges the eviction (th_ring_reader_rejoin).
func (r *ringReader) rejoin() uint64 {
	pos := r.loadHead()
	r.pos, r.head, r.sticky, r.atBatch = pos, pos, readRecord, true
	atomic.StoreUint64(u64(r.slot, slotReadPos), pos)   // relaxed in rejoin_at: the writer's lag reports
	seq := atomic.LoadUint32(u32(r.slot, slotEvictSeq)) // pairs with the store-release in th_ring_evict()
	r.evictAck = seq
	// Relaxed in rejoin_at: the hub reads it (th_ring_reader_lag) as untrusted.
	atomic.StoreUint32(u32(r.slot, slotEvictAck), seq)
	return pos
}

func (r *ringReader) setTimeout(d time.Duration) {
	ns := uint64(d)
	if d < 0 {
		ns = math.MaxUint64
	}
	r.setTimeoutNs(ns)
}

func (r *ringReader) setTimeoutNs(ns uint64) {
	atomic.StoreUint64(u64(r.slot, slotTimeout), ns) // relaxed in th_ring_reader_set_timeout
}
