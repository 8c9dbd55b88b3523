package main

import (
	"bytes"
	"encoding/binary"
	"math"
)

func writeU32(b *bytes.Buffer, v uint32) { binary.Write(b, binary.LittleEndian, v) }

func writeF32(b *bytes.Buffer, f float32) { writeU32(b, math.Float32bits(f)) }
