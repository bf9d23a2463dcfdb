// SPDX-License-Identifier: Apache-2.0

package topohub

// The layouts of protocol/protocol.h, little-endian, pinned by the golden vectors
// in testdata/golden (written by tests/test_golden.c from the C structs).
// Decoders take the bytes as received and return an error, never panic:
// everything from the hub is checked before use.

import (
	"encoding/binary"
	"fmt"
	"syscall"
)

var le = binary.LittleEndian

// protocol.h constants.
const (
	protoMagic   = 0x4854 // TH_PROTO_MAGIC
	protoVersion = 1      // TH_PROTO_VERSION
	msgMax       = 65536  // TH_MSG_MAX
	keyMax       = 4096   // TH_KEY_MAX

	msgAttach   = 1
	msgSnapshot = 2
	msgGet      = 3
	msgSync     = 4
	msgStats    = 5
	msgReaders  = 6
	msgRejoin   = 7
	msgTables   = 8
	msgReply    = 0x8000
	msgError    = 0xffff

	recChange = 1 // TH_REC_CHANGE
	recResync = 2 // TH_REC_RESYNC

	opPut    = 1 // TH_OP_PUT
	opDelete = 2 // TH_OP_DELETE

	changeFlagValueNull = 0x1 // TH_CHANGE_F_VALUE_NULL

	hdrSize          = 16 // struct th_msg_hdr
	errorSize        = 8  // struct th_msg_error
	attachSize       = 48 // struct th_msg_attach
	attachReplySize  = 40 // struct th_msg_attach_reply
	snapshotReqSize  = 8  // struct th_msg_snapshot / th_msg_get
	snapshotRepSize  = 40 // struct th_msg_snapshot_reply
	snapshotRepMin   = 32 // ... as hubs before pending_revision send it
	snapEntrySize    = 32 // struct th_snap_entry
	syncReqSize      = 16 // struct th_msg_sync
	syncReplySize    = 8  // struct th_msg_sync_reply
	rejoinReplySize  = 8  // struct th_msg_rejoin_reply
	changeHeaderSize = 48 // struct th_rec_change
	resyncRecSize    = 16 // struct th_rec_resync
)

// Error codes of common/th_error.h (part of the ABI: never renumbered).
const (
	codeLapped   = 4001
	codeEvicted  = 4002
	codeFormat   = 4003
	codeClosed   = 4004
	codeCorrupt  = 4005
	codeProto    = 4012
	codeNotFound = 4014
	codeVersion  = 4015
	codeGTID     = 4018
)

// HubError is an ERROR reply of the hub: its code (a negative errno or
// -TH_E*) and its message. errors.Is matches the sentinel or syscall.Errno
// the code names.
type HubError struct {
	Code    int32
	Message string
}

func (e *HubError) Error() string {
	return fmt.Sprintf("topohub: hub replied %s: %s", codeName(e.Code), e.Message)
}

// Unwrap gives the sentinel (Err*) or the syscall.Errno of the code.
func (e *HubError) Unwrap() error { return codeError(e.Code) }

func codeName(code int32) string {
	if err := codeError(code); err != nil {
		return err.Error()
	}
	return fmt.Sprint(code)
}

// codeError maps a negative result code to the error it names.
func codeError(code int32) error {
	switch -code {
	case codeNotFound:
		return ErrNotFound
	case codeGTID:
		return ErrGTID
	case codeProto, codeCorrupt:
		return ErrProto
	case codeVersion:
		return ErrVersion
	case codeFormat:
		return ErrFormat
	case codeEvicted:
		return ErrEvicted
	case codeLapped:
		return ErrLapped
	case codeClosed:
		return ErrHubLost
	}
	if code < 0 && -code < 4000 {
		return syscall.Errno(-code)
	}
	return ErrProto
}

// msgHeader is struct th_msg_hdr.
type msgHeader struct {
	Magic, Version, Type, Flags uint16
	Len, RequestID              uint32
}

func (h msgHeader) put(b []byte) {
	le.PutUint16(b[0:], h.Magic)
	le.PutUint16(b[2:], h.Version)
	le.PutUint16(b[4:], h.Type)
	le.PutUint16(b[6:], h.Flags)
	le.PutUint32(b[8:], h.Len)
	le.PutUint32(b[12:], h.RequestID)
}

func parseHeader(b []byte) (msgHeader, error) {
	if len(b) < hdrSize {
		return msgHeader{}, fmt.Errorf("%w: message of %d bytes, shorter than a header", ErrProto, len(b))
	}
	return msgHeader{le.Uint16(b[0:]), le.Uint16(b[2:]), le.Uint16(b[4:]), le.Uint16(b[6:]),
		le.Uint32(b[8:]), le.Uint32(b[12:])}, nil
}

// encodeRequest is a whole request message: header then body.
func encodeRequest(typ uint16, reqID uint32, body []byte) ([]byte, error) {
	if len(body) > msgMax-hdrSize {
		return nil, fmt.Errorf("topohub: request of %d bytes: %w", len(body), syscall.EMSGSIZE)
	}
	m := make([]byte, hdrSize+len(body))
	msgHeader{protoMagic, protoVersion, typ, 0, uint32(len(m)), reqID}.put(m)
	copy(m[hdrSize:], body)
	return m, nil
}

// decodeReply checks a reply to request (typ, reqID) as wire.c does and
// returns its body. An ERROR reply becomes a *HubError.
func decodeReply(m []byte, typ uint16, reqID uint32) ([]byte, error) {
	h, err := parseHeader(m)
	if err != nil {
		return nil, err
	}
	if h.Magic != protoMagic || int(h.Len) != len(m) || h.RequestID != reqID {
		return nil, fmt.Errorf("%w: reply header (magic %#x, len %d of %d bytes, request %d of %d)",
			ErrProto, h.Magic, h.Len, len(m), h.RequestID, reqID)
	}
	if h.Version != protoVersion {
		return nil, fmt.Errorf("%w: the hub speaks protocol %d, this client %d", ErrVersion, h.Version, protoVersion)
	}
	body := m[hdrSize:]
	if h.Type == msgError {
		if len(body) < errorSize {
			return nil, fmt.Errorf("%w: ERROR reply of %d bytes", ErrProto, len(body))
		}
		code := int32(le.Uint32(body))
		if code >= 0 {
			return nil, fmt.Errorf("%w: ERROR reply with code %d", ErrProto, code)
		}
		return nil, &HubError{Code: code, Message: string(body[errorSize:])}
	}
	if h.Type != typ|msgReply {
		return nil, fmt.Errorf("%w: reply type %#x to request %#x", ErrProto, h.Type, typ)
	}
	return body, nil
}

// attachRequest is struct th_msg_attach.
type attachRequest struct {
	TimeoutNs uint64
	PID       uint32
	Name      string // at most 31 bytes kept, NUL-padded
}

func (a attachRequest) encode() []byte {
	b := make([]byte, attachSize)
	le.PutUint64(b[0:], a.TimeoutNs)
	le.PutUint32(b[8:], a.PID)
	n := copy(b[16:47], a.Name) // 32 bytes, the last one NUL
	_ = n
	return b
}

// attachReply is struct th_msg_attach_reply.
type attachReply struct {
	Generation, StartPos, Revision, TimeoutNs uint64
	ReaderID, NTables                         uint32
}

func decodeAttachReply(b []byte) (attachReply, error) {
	if len(b) < attachReplySize {
		return attachReply{}, fmt.Errorf("%w: ATTACH reply of %d bytes, %d expected", ErrProto, len(b), attachReplySize)
	}
	return attachReply{le.Uint64(b[0:]), le.Uint64(b[8:]), le.Uint64(b[16:]), le.Uint64(b[24:]),
		le.Uint32(b[32:]), le.Uint32(b[36:])}, nil
}

// encodeKeyRequest is struct th_msg_snapshot (and th_msg_get: same layout) and its key.
func encodeKeyRequest(table uint32, key string) []byte {
	b := make([]byte, snapshotReqSize+len(key))
	le.PutUint32(b[0:], table)
	le.PutUint32(b[4:], uint32(len(key)))
	copy(b[snapshotReqSize:], key)
	return b
}

// snapshotReply is struct th_msg_snapshot_reply.
type snapshotReply struct {
	Revision, StartRevision, Count, Bytes uint64
	PendingRevision                       uint64 // 0 from a hub that sends 32 bytes
}

func decodeSnapshotReply(b []byte) (snapshotReply, error) {
	if len(b) < snapshotRepMin {
		return snapshotReply{}, fmt.Errorf("%w: SNAPSHOT reply of %d bytes, %d expected", ErrProto, len(b), snapshotRepSize)
	}
	r := snapshotReply{Revision: le.Uint64(b[0:]), StartRevision: le.Uint64(b[8:]), Count: le.Uint64(b[16:]),
		Bytes: le.Uint64(b[24:])}
	if len(b) >= snapshotRepSize {
		r.PendingRevision = le.Uint64(b[32:])
	}
	return r, nil
}

// snapItem is one struct th_snap_entry with its key and value (copies).
type snapItem struct {
	Revision uint64
	Version  int64
	Flags    uint32
	Key      string
	Value    []byte
}

// parseSnapshot walks the memfd's contents: count entries, each struct
// th_snap_entry + key + value, 8-byte aligned (wire.c th__snapshot_next).
func parseSnapshot(b []byte, count uint64) ([]snapItem, error) {
	if count > uint64(len(b))/snapEntrySize {
		return nil, fmt.Errorf("%w: snapshot of %d bytes cannot hold %d entries", ErrProto, len(b), count)
	}
	items := make([]snapItem, 0, count)
	off := uint64(0)
	n := uint64(len(b))
	for i := uint64(0); i < count; i++ {
		if off > n || n-off < snapEntrySize {
			return nil, fmt.Errorf("%w: snapshot entry %d at %d beyond %d bytes", ErrProto, i, off, n)
		}
		e := b[off:]
		keyLen, valueLen := uint64(le.Uint32(e[16:])), uint64(le.Uint32(e[20:]))
		need := snapEntrySize + keyLen + valueLen
		if n-off < need || keyLen > keyMax {
			return nil, fmt.Errorf("%w: snapshot entry %d (key %d, value %d bytes) beyond %d bytes",
				ErrProto, i, keyLen, valueLen, n)
		}
		if le.Uint64(e[0:]) == 0 {
			// No revision is 0 (protocol.h): zeros are not a snapshot.
			return nil, fmt.Errorf("%w: snapshot entry %d at %d has revision 0", ErrProto, i, off)
		}
		items = append(items, snapItem{
			Revision: le.Uint64(e[0:]),
			Version:  int64(le.Uint64(e[8:])),
			Flags:    le.Uint32(e[24:]),
			Key:      string(e[snapEntrySize : snapEntrySize+keyLen]),
			Value:    append([]byte(nil), e[snapEntrySize+keyLen:need]...),
		})
		off += (need + 7) &^ 7
	}
	return items, nil
}

// encodeSyncRequest is struct th_msg_sync and the GTID text.
func encodeSyncRequest(timeoutNs uint64, gtid string) []byte {
	b := make([]byte, syncReqSize+len(gtid))
	le.PutUint64(b[0:], timeoutNs)
	le.PutUint32(b[8:], uint32(len(gtid)))
	copy(b[syncReqSize:], gtid)
	return b
}

// decodeRevisionReply is struct th_msg_sync_reply and th_msg_rejoin_reply.
func decodeRevisionReply(b []byte) (uint64, error) {
	if len(b) < syncReplySize {
		return 0, fmt.Errorf("%w: reply of %d bytes, %d expected", ErrProto, len(b), syncReplySize)
	}
	return le.Uint64(b), nil
}

// change is a TH_REC_CHANGE payload: struct th_rec_change + key + value +
// gtid. Key, Value and GTID alias the payload (the ring reader's buffer,
// which the next read overwrites): the reader copies only what it keeps.
type change struct {
	Revision  uint64
	Version   int64
	CommitUs  uint64
	PublishNs uint64
	Table     uint8
	Op        uint8
	Flags     uint32
	Key       []byte
	Value     []byte
	GTID      []byte
}

func decodeChange(p []byte) (change, error) {
	if len(p) < changeHeaderSize {
		return change{}, fmt.Errorf("%w: change record of %d bytes", ErrProto, len(p))
	}
	keyLen, valueLen, gtidLen := uint64(le.Uint32(p[32:])), uint64(le.Uint32(p[36:])), uint64(le.Uint16(p[40:]))
	if changeHeaderSize+keyLen+valueLen+gtidLen > uint64(len(p)) {
		return change{}, fmt.Errorf("%w: change record of %d bytes with key %d, value %d, gtid %d",
			ErrProto, len(p), keyLen, valueLen, gtidLen)
	}
	k := changeHeaderSize + keyLen
	v := k + valueLen
	return change{
		Revision:  le.Uint64(p[0:]),
		Version:   int64(le.Uint64(p[8:])),
		CommitUs:  le.Uint64(p[16:]),
		PublishNs: le.Uint64(p[24:]),
		Table:     p[42],
		Op:        p[43],
		Flags:     le.Uint32(p[44:]),
		Key:       p[changeHeaderSize:k:k],
		Value:     p[k:v:v],
		GTID:      p[v : v+gtidLen : v+gtidLen],
	}, nil
}

// resyncRecord is a TH_REC_RESYNC payload (struct th_rec_resync).
type resyncRecord struct {
	Revision uint64
	Reason   uint32
	Table    uint32 // math.MaxUint32: all
}

func decodeResync(p []byte) (resyncRecord, error) {
	if len(p) < resyncRecSize {
		return resyncRecord{}, fmt.Errorf("%w: resync record of %d bytes", ErrProto, len(p))
	}
	return resyncRecord{le.Uint64(p[0:]), le.Uint32(p[8:]), le.Uint32(p[12:])}, nil
}

// ---- batch tags (protocol.h) ---------------------------------------------------

// tagBit is th_tag_bit: the bit of a batch's tags (and of a filter) that
// stands for (table, path): FNV-1a over the table number (4 bytes,
// little-endian) then the path, its top 9 bits after a multiplicative mix.
func tagBit(table uint32, path string) uint {
	return tagBitOf(tagHashPath(tagHashStart(table), path))
}

func tagHashStart(table uint32) uint64 {
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < 4; i++ {
		h = (h ^ uint64(table>>(8*i)&0xff)) * 0x100000001b3
	}
	return h
}

func tagHashPath(h uint64, p string) uint64 {
	for i := 0; i < len(p); i++ {
		h = (h ^ uint64(p[i])) * 0x100000001b3
	}
	return h
}

func tagBitOf(h uint64) uint { return uint((h * 0x9E3779B97F4A7C15) >> (64 - 9)) }

// tagKey is th_tag_key: the bits of every component prefix of key (key[:i]
// for each i > 0 with key[i] == '/') and of key itself.
func tagKey(tags *[tagWords]uint64, table uint32, key string) {
	h := tagHashStart(table)
	for i := 0; i < len(key); i++ {
		if key[i] == '/' && i > 0 {
			b := tagBitOf(h)
			tags[b/64] |= 1 << (b % 64)
		}
		h = (h ^ uint64(key[i])) * 0x100000001b3
	}
	b := tagBitOf(h)
	tags[b/64] |= 1 << (b % 64)
}
