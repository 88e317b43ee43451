package exports

import "encoding/binary"

// unBCJx86 undoes xz's x86 BCJ filter in place on buf, the whole output of one xz block whose
// first byte lies at stream position start (the filter's start offset, 0 unless the block
// header says otherwise).
//
// The filter rewrites the 32-bit operand of every CALL (E8) and JMP (E9) from a relative to an
// absolute address, which compresses better; decoding subtracts the position again. The
// heuristics that decide which E8/E9 bytes are opcodes (prevMask: E8/E9 seen in the last three
// bytes) must be those of the encoder bit for bit, so this follows xz-embedded's
// xz_dec_bcj.c (bcj_x86) literally. As there, the last four bytes are never filtered: the
// encoder leaves them unchanged as well.
func unBCJx86(buf []byte, start uint32) {
	maskToAllowed := [8]bool{true, true, true, false, true, false, false, false}
	maskToBitNum := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
	isMSByte := func(b byte) bool { return b == 0x00 || b == 0xff }

	if len(buf) <= 4 {
		return
	}
	size := len(buf) - 4
	prevPos := -1
	prevMask := uint32(0)
	for i := 0; i < size; i++ {
		if buf[i]&0xfe != 0xe8 {
			continue
		}
		d := i - prevPos
		if d > 3 {
			prevMask = 0
		} else {
			prevMask = (prevMask << (d - 1)) & 7
			if prevMask != 0 {
				b := buf[i+4-int(maskToBitNum[prevMask])]
				if !maskToAllowed[prevMask] || isMSByte(b) {
					prevPos = i
					prevMask = prevMask<<1 | 1
					continue
				}
			}
		}
		prevPos = i
		if !isMSByte(buf[i+4]) {
			prevMask = prevMask<<1 | 1
			continue
		}
		src := binary.LittleEndian.Uint32(buf[i+1:])
		var dest uint32
		for {
			dest = src - (start + uint32(i) + 5)
			if prevMask == 0 {
				break
			}
			j := maskToBitNum[prevMask] * 8
			if !isMSByte(byte(dest >> (24 - j))) {
				break
			}
			src = dest ^ (1<<(32-j) - 1)
		}
		dest &= 0x01ffffff
		dest |= -(dest & 0x01000000)
		binary.LittleEndian.PutUint32(buf[i+1:], dest)
		i += 4
	}
}
