// SPDX-License-Identifier: Apache-2.0

package topohub

// The control socket: SOCK_SEQPACKET ("unixpacket"), strictly one request
// then its reply; the caller serialises calls on one ctlConn. Descriptors
// arrive by SCM_RIGHTS (Go's net package receives them close-on-exec).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"
)

type ctlConn struct {
	c     *net.UnixConn
	reqID uint32
	buf   []byte
	oob   []byte
}

func dialCtl(ctx context.Context, path string) (*ctlConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unixpacket", path)
	if err != nil {
		return nil, err
	}
	return &ctlConn{c: c.(*net.UnixConn), buf: make([]byte, msgMax+1), oob: make([]byte, syscall.CmsgSpace(4*4))}, nil
}

func (cc *ctlConn) Close() error { return cc.c.Close() }

// call sends one request and reads its reply body (a copy) and up to
// wantFDs descriptors (others are closed). The reply must come before ctx
// ends (its deadline, or its cancellation, which interrupts the read).
// Descriptors are closed on every error.
func (cc *ctlConn) call(ctx context.Context, typ uint16, body []byte, wantFDs int) ([]byte, []int, error) {
	cc.reqID++
	req, err := encodeRequest(typ, cc.reqID, body)
	if err != nil {
		return nil, nil, err
	}
	deadline, _ := ctx.Deadline()
	cc.c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { cc.c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, _, err := cc.c.WriteMsgUnix(req, nil, nil); err != nil {
		return nil, nil, cc.ioError(ctx, err)
	}
	n, oobn, flags, _, err := cc.c.ReadMsgUnix(cc.buf, cc.oob)
	var fds []int
	if err == nil && oobn > 0 {
		fds, err = parseRights(cc.oob[:oobn])
	}
	closeAll := func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}
	if err != nil {
		closeAll()
		return nil, nil, cc.ioError(ctx, err)
	}
	if n == 0 {
		closeAll()
		return nil, nil, fmt.Errorf("%w: the hub closed the connection", ErrHubLost)
	}
	if n > msgMax || flags&(syscall.MSG_TRUNC|syscall.MSG_CTRUNC) != 0 {
		closeAll()
		return nil, nil, fmt.Errorf("%w: reply truncated (%d bytes, flags %#x)", ErrProto, n, flags)
	}
	rb, err := decodeReply(cc.buf[:n], typ, cc.reqID)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	for len(fds) > wantFDs {
		syscall.Close(fds[len(fds)-1])
		fds = fds[:len(fds)-1]
	}
	return append([]byte(nil), rb...), fds, nil
}

// ioError names a failed read or write: the caller's context, or the hub gone.
func (cc *ctlConn) ioError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("topohub: no reply from the hub in time: %w", syscall.ETIMEDOUT)
	}
	return fmt.Errorf("%w: %v", ErrHubLost, err)
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("%w: control message: %v", ErrProto, err)
	}
	var fds []int
	for _, m := range msgs {
		if m.Header.Level != syscall.SOL_SOCKET || m.Header.Type != syscall.SCM_RIGHTS {
			continue
		}
		got, err := syscall.ParseUnixRights(&m)
		if err != nil {
			for _, fd := range fds {
				syscall.Close(fd)
			}
			return nil, fmt.Errorf("%w: SCM_RIGHTS: %v", ErrProto, err)
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

// dead says whether the hub closed this connection (it died without closing
// its ring). Anything the hub sends unasked is read and dropped (none is
// defined), as client.c's ctl_dead does. Never blocks.
func (cc *ctlConn) dead() bool {
	rc, err := cc.c.SyscallConn()
	if err != nil {
		return true
	}
	isDead := false
	var b [256]byte
	rc.Read(func(fd uintptr) bool {
		for {
			// Raw: MSG_DONTWAIT cannot block, and a syscall through the
			// runtime's entersyscall wakes its sysmon thread from its sleep
			// (then polling every 20 us for a while): this runs on every
			// empty wait of an idle client.
			n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
				syscall.MSG_DONTWAIT, 0, 0)
			if e == 0 && n > 0 {
				continue
			}
			isDead = (e == 0 && n == 0) || (e != 0 && e != syscall.EAGAIN && e != syscall.EINTR)
			return true
		}
	})
	return isDead
}

// snapshot asks for SNAPSHOT (prefix, on the bytes) or GET (one key) and
// reads the memfd of entries: with pread, into memory of our own, at once,
// since the hub may take it back (protocol.h): one that ends early is an
// error wrapping syscall.ESTALE, never entries.
func (cc *ctlConn) snapshot(ctx context.Context, get bool, table uint32, key string) (snapshotReply, []snapItem, error) {
	if len(key) > keyMax {
		return snapshotReply{}, nil, fmt.Errorf("topohub: key of %d bytes: %w", len(key), syscall.ENAMETOOLONG)
	}
	typ := uint16(msgSnapshot)
	if get {
		typ = msgGet
	}
	body, fds, err := cc.call(ctx, typ, encodeKeyRequest(table, key), 1)
	if err != nil {
		return snapshotReply{}, nil, err
	}
	defer func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}()
	rep, err := decodeSnapshotReply(body)
	if err != nil {
		return rep, nil, err
	}
	if rep.Bytes == 0 {
		if rep.Count != 0 {
			return rep, nil, fmt.Errorf("%w: %d entries in 0 bytes", ErrProto, rep.Count)
		}
		return rep, nil, nil
	}
	if len(fds) != 1 {
		return rep, nil, fmt.Errorf("%w: snapshot reply without its memfd", ErrProto)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fds[0], &st); err != nil || rep.Bytes > 1<<40 {
		return rep, nil, fmt.Errorf("%w: snapshot memfd of %d bytes: %v", ErrProto, rep.Bytes, err)
	}
	if uint64(st.Size) < rep.Bytes {
		return rep, nil, errReclaimed(rep.Bytes, uint64(st.Size))
	}
	data := make([]byte, rep.Bytes)
	for off := 0; off < len(data); {
		n, err := syscall.Pread(fds[0], data[off:], int64(off))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return rep, nil, fmt.Errorf("%w: reading the snapshot memfd: %v", ErrProto, err)
		}
		if n == 0 {
			return rep, nil, errReclaimed(rep.Bytes, uint64(off))
		}
		off += n
	}
	items, err := parseSnapshot(data, rep.Count)
	return rep, items, err
}

// errReclaimed: a snapshot memfd that ends before the bytes its reply
// announced. The hub took it back (truncated it) before it was read: after
// snapshot_hold_ms, or because this uid held more than snapshot_bytes_max.
// The snapshot fails; asking again gets a new one.
func errReclaimed(want, got uint64) error {
	return fmt.Errorf("topohub: snapshot memfd ended at %d of its %d bytes: the hub took it back before it was "+
		"read (snapshot_hold_ms, or this uid held more than snapshot_bytes_max): %w", got, want, syscall.ESTALE)
}
