package alsa

import (
	"fmt"
	"go/ast"
	"go/constant"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/presscap/presscap/beeper/alsa/alsatest"
	"github.com/presscap/presscap/internal/testing/testtool"
)

// A model of the C layout rules, to compute the kernel's structures from
// their definitions in include/uapi/sound/asound.h for a given ABI.

type abi struct {
	goarch string
	long   int // sizeof(long) == alignof(long) == sizeof(void *) on these ABIs
}

var abis = []abi{{"amd64", 8}, {"arm64", 8}, {"arm", 4}}

type ctype struct {
	size, align int
	fields      []cfield // for structs
}

type cfield struct {
	name string
	t    ctype
}

func scalar(n int) ctype { return ctype{size: n, align: n} }

func array(t ctype, n int) ctype { return ctype{size: t.size * n, align: t.align} }

func alignUp(n, a int) int { return (n + a - 1) / a * a }

func cstruct(fields ...cfield) ctype {
	off, al := 0, 1
	for _, f := range fields {
		off = alignUp(off, f.t.align) + f.t.size
		al = max(al, f.t.align)
	}
	return ctype{size: alignUp(off, al), align: al, fields: fields}
}

func (t ctype) offsets() []int {
	var offs []int
	off := 0
	for _, f := range t.fields {
		off = alignUp(off, f.t.align)
		offs = append(offs, off)
		off += f.t.size
	}
	return offs
}

func f(name string, t ctype) cfield { return cfield{name, t} }

type cstructs struct {
	mask, interval, hw, sw, xferi ctype
}

func kernelStructs(a abi) cstructs {
	u32, uchar, long := scalar(4), scalar(1), scalar(a.long)
	var s cstructs
	// struct snd_mask { __u32 bits[(SNDRV_MASK_MAX+31)/32]; } with SNDRV_MASK_MAX 256
	s.mask = cstruct(f("bits", array(u32, (256+31)/32)))
	// struct snd_interval { unsigned int min, max; unsigned int openmin:1, openmax:1, integer:1, empty:1; }
	// The four bit fields share one unsigned int.
	s.interval = cstruct(f("min", u32), f("max", u32), f("flags", u32))
	s.hw = cstruct(
		f("flags", u32),
		f("masks", array(s.mask, 2-0+1)), // LAST_MASK - FIRST_MASK + 1
		f("mres", array(s.mask, 5)),
		f("intervals", array(s.interval, 19-8+1)), // LAST_INTERVAL - FIRST_INTERVAL + 1
		f("ires", array(s.interval, 9)),
		f("rmask", u32), f("cmask", u32), f("info", u32), f("msbits", u32),
		f("rate_num", u32), f("rate_den", u32),
		f("fifo_size", long), // snd_pcm_uframes_t = unsigned long
		f("reserved", array(uchar, 64)),
	)
	s.sw = cstruct(
		f("tstamp_mode", u32), f("period_step", u32), f("sleep_min", u32),
		f("avail_min", long), f("xfer_align", long), f("start_threshold", long), f("stop_threshold", long),
		f("silence_threshold", long), f("silence_size", long), f("boundary", long),
		f("proto", u32), f("tstamp_type", u32),
		f("reserved", array(uchar, 56)),
	)
	s.xferi = cstruct(f("result", long), f("buf", long), f("frames", long))
	return s
}

// _IOC from include/uapi/asm-generic/ioctl.h, which amd64 and arm64 use.
func ioc(dir, typ, nr, size int) uint64 {
	return uint64(dir)<<30 | uint64(size)<<16 | uint64(typ)<<8 | uint64(nr)
}

type wantIoctl struct {
	name       string // the Go constant
	dir, nr    int
	argSizeFor func(cstructs) int
}

var wantIoctls = []wantIoctl{
	{"ioctlPVersion", 2, 0x00, func(cstructs) int { return 4 }},
	{"ioctlHWRefine", 3, 0x10, func(s cstructs) int { return s.hw.size }},
	{"ioctlHWParams", 3, 0x11, func(s cstructs) int { return s.hw.size }},
	{"ioctlHWFree", 0, 0x12, func(cstructs) int { return 0 }},
	{"ioctlSWParams", 3, 0x13, func(s cstructs) int { return s.sw.size }},
	{"ioctlPrepare", 0, 0x40, func(cstructs) int { return 0 }},
	{"ioctlDrop", 0, 0x43, func(cstructs) int { return 0 }},
	{"ioctlDrain", 0, 0x44, func(cstructs) int { return 0 }},
	{"ioctlResume", 0, 0x47, func(cstructs) int { return 0 }},
	{"ioctlWriteIFrame", 1, 0x50, func(s cstructs) int { return s.xferi.size }},
}

// checkedPackage type-checks layout.go as the compiler would for goarch.
func checkedPackage(t *testing.T, goarch string) (*types.Package, *types.Info, types.Sizes) {
	t.Helper()
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "layout.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	sizes := types.SizesFor("gc", goarch)
	if sizes == nil {
		t.Fatalf("no gc sizes for %s", goarch)
	}
	conf := types.Config{Sizes: sizes, Importer: importer.Default()}
	info := &types.Info{Defs: map[*ast.Ident]types.Object{}}
	pkg, err := conf.Check("alsa", fset, []*ast.File{file}, info)
	if err != nil {
		t.Fatalf("type-check layout.go for %s: %v", goarch, err)
	}
	return pkg, info, sizes
}

func compareStruct(t *testing.T, goarch string, pkg *types.Package, sizes types.Sizes, goName string, c ctype) {
	t.Helper()
	obj := pkg.Scope().Lookup(goName)
	if obj == nil {
		t.Fatalf("%s: no type %s", goarch, goName)
	}
	st := obj.Type().Underlying().(*types.Struct)
	if st.NumFields() != len(c.fields) {
		t.Fatalf("%s %s: %d fields, the kernel's struct has %d", goarch, goName, st.NumFields(), len(c.fields))
	}
	var fields []*types.Var
	for i := 0; i < st.NumFields(); i++ {
		fields = append(fields, st.Field(i))
	}
	goOffs := sizes.Offsetsof(fields)
	for i, off := range c.offsets() {
		if goOffs[i] != int64(off) || sizes.Sizeof(fields[i].Type()) != int64(c.fields[i].t.size) {
			t.Errorf("%s %s.%s: offset %d size %d, kernel's %s: offset %d size %d", goarch, goName, fields[i].Name(),
				goOffs[i], sizes.Sizeof(fields[i].Type()), c.fields[i].name, off, c.fields[i].t.size)
		}
	}
	if got := sizes.Sizeof(obj.Type()); got != int64(c.size) {
		t.Errorf("%s sizeof(%s) = %d, kernel's = %d", goarch, goName, got, c.size)
	}
}

// TestLayoutPerArch checks the Go structures and ioctl numbers, as the
// compiler lays them out for each GOARCH, against the kernel's definitions.
func TestLayoutPerArch(t *testing.T) {
	for _, a := range abis {
		t.Run(a.goarch, func(t *testing.T) {
			pkg, info, sizes := checkedPackage(t, a.goarch)
			cs := kernelStructs(a)
			compareStruct(t, a.goarch, pkg, sizes, "mask", cs.mask)
			compareStruct(t, a.goarch, pkg, sizes, "interval", cs.interval)
			compareStruct(t, a.goarch, pkg, sizes, "hwParams", cs.hw)
			compareStruct(t, a.goarch, pkg, sizes, "swParams", cs.sw)
			compareStruct(t, a.goarch, pkg, sizes, "xferi", cs.xferi)
			consts := map[string]uint64{}
			for id, obj := range info.Defs {
				if c, ok := obj.(*types.Const); ok {
					v, _ := constant.Uint64Val(c.Val())
					consts[id.Name] = v
				}
			}
			for _, w := range wantIoctls {
				want := ioc(w.dir, 'A', w.nr, w.argSizeFor(cs))
				got, ok := consts[w.name]
				if !ok {
					t.Errorf("%s: no constant %s", a.goarch, w.name)
				} else if got != want {
					t.Errorf("%s: %s = %#x, kernel's = %#x", a.goarch, w.name, got, want)
				}
			}
		})
	}
}

// TestLayoutKnownValues pins the figures that the model must produce, so
// that a mistake in the model itself shows: the 64-bit hw_params is 608
// bytes (0xc2604111), the 32-bit one 604 (0xc25c4111).
func TestLayoutKnownValues(t *testing.T) {
	for _, c := range []struct {
		goarch         string
		hw, sw, xferi  int
		hwParamsIoctl  uint64
		writeiIoctl    uint64
		fifoSizeOffset int
	}{
		{"amd64", 608, 136, 24, 0xc2604111, 0x40184150, 536},
		{"arm64", 608, 136, 24, 0xc2604111, 0x40184150, 536},
		{"arm", 604, 104, 12, 0xc25c4111, 0x400c4150, 536},
	} {
		var a abi
		for _, x := range abis {
			if x.goarch == c.goarch {
				a = x
			}
		}
		cs := kernelStructs(a)
		if cs.hw.size != c.hw || cs.sw.size != c.sw || cs.xferi.size != c.xferi {
			t.Errorf("%s: model sizes hw %d sw %d xferi %d, want %d %d %d", c.goarch, cs.hw.size, cs.sw.size, cs.xferi.size, c.hw, c.sw, c.xferi)
		}
		if got := ioc(3, 'A', 0x11, cs.hw.size); got != c.hwParamsIoctl {
			t.Errorf("%s: HW_PARAMS %#x, want %#x", c.goarch, got, c.hwParamsIoctl)
		}
		if got := ioc(1, 'A', 0x50, cs.xferi.size); got != c.writeiIoctl {
			t.Errorf("%s: WRITEI_FRAMES %#x, want %#x", c.goarch, got, c.writeiIoctl)
		}
		if got := cs.hw.offsets()[11]; got != c.fifoSizeOffset {
			t.Errorf("%s: fifo_size at %d, want %d", c.goarch, got, c.fifoSizeOffset)
		}
	}
	// The fake device spells the LP64 numbers out on its own.
	for _, p := range []struct {
		name      string
		got, want uint64
	}{
		{"HW_REFINE", alsatest.ReqHWRefine, uint64(ioctlHWRefine)},
		{"HW_PARAMS", alsatest.ReqHWParams, uint64(ioctlHWParams)},
		{"SW_PARAMS", alsatest.ReqSWParams, uint64(ioctlSWParams)},
		{"WRITEI_FRAMES", alsatest.ReqWriteI, uint64(ioctlWriteIFrame)},
		{"PVERSION", alsatest.ReqPVersion, uint64(ioctlPVersion)},
		{"PREPARE", alsatest.ReqPrepare, uint64(ioctlPrepare)},
		{"DRAIN", alsatest.ReqDrain, uint64(ioctlDrain)},
	} {
		if unsafe.Sizeof(uintptr(0)) == 8 && p.got != p.want {
			t.Errorf("alsatest %s = %#x, package alsa's = %#x", p.name, p.got, p.want)
		}
	}
}

// TestLayoutAgainstHostCompiler compiles a C program against the installed
// kernel headers (<sound/asound.h>) and compares its sizes, offsets and
// ioctl numbers with both the model and this build's Go values.
func TestLayoutAgainstHostCompiler(t *testing.T) {
	cc := testtool.Path(t, "cc", "gcc")
	if _, err := os.Stat("/usr/include/sound/asound.h"); err != nil {
		t.Fatalf("no kernel sound header: install the Debian package linux-libc-dev (%v)", err)
	}
	dir := t.TempDir()
	var prog strings.Builder
	prog.WriteString("#include <stdio.h>\n#include <stddef.h>\n#include <time.h>\n#include <sys/ioctl.h>\n#include <sound/asound.h>\nint main(void) {\n")
	p := func(name, expr string) {
		fmt.Fprintf(&prog, "\tprintf(\"%s %%llu\\n\", (unsigned long long)(%s));\n", name, expr)
	}
	for _, s := range []struct {
		c      string
		fields []string
	}{
		{"snd_pcm_hw_params", []string{"flags", "masks", "mres", "intervals", "ires", "rmask", "cmask", "info", "msbits", "rate_num", "rate_den", "fifo_size", "reserved"}},
		{"snd_pcm_sw_params", []string{"tstamp_mode", "period_step", "sleep_min", "avail_min", "xfer_align", "start_threshold", "stop_threshold", "silence_threshold", "silence_size", "boundary", "proto", "tstamp_type", "reserved"}},
		{"snd_xferi", []string{"result", "buf", "frames"}},
		{"snd_interval", []string{"min", "max"}},
	} {
		p("sizeof."+s.c, "sizeof(struct "+s.c+")")
		for _, fl := range s.fields {
			p("offsetof."+s.c+"."+fl, "offsetof(struct "+s.c+", "+fl+")")
		}
	}
	for _, n := range []string{"PVERSION", "HW_REFINE", "HW_PARAMS", "HW_FREE", "SW_PARAMS", "PREPARE", "DROP", "DRAIN", "RESUME", "WRITEI_FRAMES"} {
		p("ioctl."+n, "SNDRV_PCM_IOCTL_"+n)
	}
	p("version", "SNDRV_PCM_VERSION")
	p("sizeof.long", "sizeof(long)")
	p("sizeof.pointer", "sizeof(void *)")
	prog.WriteString("\treturn 0;\n}\n")
	src := filepath.Join(dir, "layout.c")
	if err := os.WriteFile(src, []byte(prog.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "layout")
	if out, err := exec.Command(cc, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, " ")
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("bad line %q", line)
		}
		got[k] = n
	}
	var a abi
	for _, x := range abis {
		if x.goarch == runtime.GOARCH {
			a = x
		}
	}
	if a.goarch == "" {
		t.Fatalf("no ABI model for GOARCH %s", runtime.GOARCH)
	}
	// The compiler may target another GOARCH than this test binary (an
	// arm64 test under qemu-user still finds the build machine's cc); the
	// header's layout is the same where long and pointers are the same size.
	if got["sizeof.long"] != uint64(a.long) || got["sizeof.pointer"] != uint64(a.long) {
		t.Fatalf("the C compiler has %d-byte long and %d-byte pointers, %s has %d", got["sizeof.long"], got["sizeof.pointer"], a.goarch, a.long)
	}
	cs := kernelStructs(a)
	check := func(key string, model int, goVal uintptr) {
		t.Helper()
		if got[key] != uint64(model) || uint64(goVal) != uint64(model) {
			t.Errorf("%s: C compiler %d, model %d, Go %d", key, got[key], model, goVal)
		}
	}
	check("sizeof.snd_pcm_hw_params", cs.hw.size, unsafe.Sizeof(hwParams{}))
	check("sizeof.snd_pcm_sw_params", cs.sw.size, unsafe.Sizeof(swParams{}))
	check("sizeof.snd_xferi", cs.xferi.size, unsafe.Sizeof(xferi{}))
	check("sizeof.snd_interval", cs.interval.size, unsafe.Sizeof(interval{}))
	var hw hwParams
	hwOffs := []uintptr{unsafe.Offsetof(hw.Flags), unsafe.Offsetof(hw.Masks), unsafe.Offsetof(hw.Mres), unsafe.Offsetof(hw.Intervals),
		unsafe.Offsetof(hw.Ires), unsafe.Offsetof(hw.Rmask), unsafe.Offsetof(hw.Cmask), unsafe.Offsetof(hw.Info), unsafe.Offsetof(hw.Msbits),
		unsafe.Offsetof(hw.RateNum), unsafe.Offsetof(hw.RateDen), unsafe.Offsetof(hw.FifoSize), unsafe.Offsetof(hw.Reserved)}
	for i, off := range cs.hw.offsets() {
		check("offsetof.snd_pcm_hw_params."+cs.hw.fields[i].name, off, hwOffs[i])
	}
	var sw swParams
	swOffs := []uintptr{unsafe.Offsetof(sw.TstampMode), unsafe.Offsetof(sw.PeriodStep), unsafe.Offsetof(sw.SleepMin), unsafe.Offsetof(sw.AvailMin),
		unsafe.Offsetof(sw.XferAlign), unsafe.Offsetof(sw.StartThreshold), unsafe.Offsetof(sw.StopThreshold), unsafe.Offsetof(sw.SilenceThreshold),
		unsafe.Offsetof(sw.SilenceSize), unsafe.Offsetof(sw.Boundary), unsafe.Offsetof(sw.Proto), unsafe.Offsetof(sw.TstampType), unsafe.Offsetof(sw.Reserved)}
	for i, off := range cs.sw.offsets() {
		check("offsetof.snd_pcm_sw_params."+cs.sw.fields[i].name, off, swOffs[i])
	}
	var x xferi
	xOffs := []uintptr{unsafe.Offsetof(x.Result), unsafe.Offsetof(x.Buf), unsafe.Offsetof(x.Frames)}
	for i, off := range cs.xferi.offsets() {
		check("offsetof.snd_xferi."+cs.xferi.fields[i].name, off, xOffs[i])
	}
	goIoctls := map[string]uintptr{"PVERSION": ioctlPVersion, "HW_REFINE": ioctlHWRefine, "HW_PARAMS": ioctlHWParams, "HW_FREE": ioctlHWFree,
		"SW_PARAMS": ioctlSWParams, "PREPARE": ioctlPrepare, "DROP": ioctlDrop, "DRAIN": ioctlDrain, "RESUME": ioctlResume, "WRITEI_FRAMES": ioctlWriteIFrame}
	cNames := map[string]string{"ioctlPVersion": "PVERSION", "ioctlHWRefine": "HW_REFINE", "ioctlHWParams": "HW_PARAMS", "ioctlHWFree": "HW_FREE",
		"ioctlSWParams": "SW_PARAMS", "ioctlPrepare": "PREPARE", "ioctlDrop": "DROP", "ioctlDrain": "DRAIN", "ioctlResume": "RESUME", "ioctlWriteIFrame": "WRITEI_FRAMES"}
	for _, w := range wantIoctls {
		n := cNames[w.name]
		model := ioc(w.dir, 'A', w.nr, w.argSizeFor(cs))
		if got["ioctl."+n] != model || uint64(goIoctls[n]) != model {
			t.Errorf("SNDRV_PCM_IOCTL_%s: C compiler %#x, model %#x, Go %#x", n, got["ioctl."+n], model, goIoctls[n])
		}
	}
	if v := got["version"]; v>>16 != protoMajor {
		t.Errorf("header's SNDRV_PCM_VERSION %#x has major %d, package speaks %d", v, v>>16, protoMajor)
	}
}
