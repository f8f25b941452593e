package fat

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presscap/presscap/internal/testing/testtool"
)

// Size of a gokrazy boot partition.
const testSectors = 100 << 20 / SectorSize

type testFile struct {
	path string
	data []byte
}

func sampleFiles() []testFile {
	big := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640000 bytes, many clusters
	return []testFile{
		{"cmdline.txt", []byte("console=tty1 root=PARTUUID=60C24CC1-F3F9-427A-8199-00000000" + strings.Repeat(" ", 64))},
		{"config.txt", []byte("enable_uart=1\n")},
		{"vmlinuz", big},
		{"empty.dat", nil},
		{"bcm2711-rpi-4-b.dtb", []byte("dtb four")},
		{"bcm2711-rpi-400.dtb", []byte("dtb four hundred")},
		{"bcm2711-rpi-cm4.dtb", []byte("dtb cm4")},
		{"overlays/README", []byte("readme")},
		{"overlays/vc4-kms-v3d-pi4.dtbo", []byte("overlay a")},
		{"overlays/vc4-kms-v3d-pi5.dtbo", []byte("overlay b")},
		{"loader/entries/gokrazy.conf", []byte("title gokrazy\nlinux /vmlinuz\noptions root=x\n")},
		{"EFI/BOOT/BOOTAA64.EFI", []byte("MZ efi")},
		{"A Name With Spaces.txt", []byte("spaces")},
		{"unicodé.txt", []byte("unicode")},
	}
}

func buildImage(t *testing.T, files []testFile) (string, int64) {
	t.Helper()
	b := NewBuilder()
	for _, f := range files {
		if err := b.AddFile(f.path, f.data); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(t.TempDir(), "boot.fat")
	fh, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if err := fh.Truncate(testSectors * SectorSize); err != nil {
		t.Fatal(err)
	}
	used, err := b.Write(fh, Options{TotalSectors: testSectors, HiddenSectors: 8192, VolumeID: 0x1234abcd,
		ModTime: time.Date(2026, 11, 27, 10, 30, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	return img, used
}

func TestFsckAndMtoolsReadWhatWeWrite(t *testing.T) {
	fsck := testtool.Path(t, "fsck.fat", "dosfstools")
	mtype := testtool.Path(t, "mtype", "mtools")
	files := sampleFiles()
	img, used := buildImage(t, files)

	out, err := exec.Command(fsck, "-n", "-v", img).CombinedOutput()
	if err != nil {
		t.Fatalf("fsck.fat -n: %v\n%s", err, out)
	}
	for _, bad := range []string{"Free cluster summary", "differ", "Bad", "Wrong", "invalid", "Invalid", "damaged"} {
		if strings.Contains(string(out), bad) {
			t.Errorf("fsck.fat reported %q:\n%s", bad, out)
		}
	}
	if !strings.Contains(string(out), "1 FATs, 16 bit entries") {
		t.Errorf("fsck.fat does not see one 16-bit FAT:\n%s", out)
	}

	for _, f := range files {
		cmd := exec.Command(mtype, "-i", img, "::/"+f.path)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "LC_ALL=C.UTF-8")
		got, err := cmd.Output()
		if err != nil {
			t.Errorf("mtype %s: %v", f.path, err)
			continue
		}
		if !bytes.Equal(got, f.data) {
			t.Errorf("mtype %s: %d bytes differ from the %d written", f.path, len(got), len(f.data))
		}
	}

	fs := openImage(t, img)
	if fs.UsedBytes() != used {
		t.Errorf("UsedBytes = %d, Write said %d", fs.UsedBytes(), used)
	}
	for _, f := range files {
		got, err := fs.ReadFile(f.path)
		if err != nil {
			t.Errorf("ReadFile(%s): %v", f.path, err)
			continue
		}
		if !bytes.Equal(got, f.data) {
			t.Errorf("ReadFile(%s) = %d bytes, want %d", f.path, len(got), len(f.data))
		}
		// Long names are matched case-insensitively, as on FAT.
		if _, err := fs.Stat(strings.ToUpper(f.path)); err != nil {
			t.Errorf("Stat(upper %s): %v", f.path, err)
		}
	}
	var walked []string
	if err := fs.Walk(func(f File) error {
		if !f.Dir {
			walked = append(walked, f.Path)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(walked) != len(files) {
		t.Errorf("Walk found %d files, want %d: %v", len(walked), len(files), walked)
	}
}

// openImage opens the FAT image file img with our reader; the file is
// closed at cleanup.
func openImage(t *testing.T, img string) *FS {
	t.Helper()
	fh, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fh.Close() })
	fs, err := Open(fh)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestGokrazyLookupFindsTheSameBytes(t *testing.T) {
	img, _ := buildImage(t, sampleFiles())
	fs := openImage(t, img)
	for _, p := range []string{"/cmdline.txt", "/config.txt", "/loader/entries/gokrazy.conf"} {
		off1, n1, err := fs.Extents(p)
		if err != nil {
			t.Fatal(err)
		}
		off2, n2, err := fs.GokrazyExtents(p)
		if err != nil {
			t.Fatalf("gokrazy-style lookup of %s: %v", p, err)
		}
		if off1 != off2 || n1 != n2 {
			t.Errorf("%s: long-name lookup (%d,%d) != gokrazy lookup (%d,%d)", p, off1, n1, off2, n2)
		}
	}
	st, err := fs.Stat("loader/entries/gokrazy.conf")
	if err != nil {
		t.Fatal(err)
	}
	if st.Short != "GOKRAZ~1.CON" {
		t.Errorf("short name of gokrazy.conf = %q, want GOKRAZ~1.CON", st.Short)
	}
	// Three dtbs share the basis BCM2711-; they must get distinct tails.
	seen := map[string]string{}
	for _, n := range []string{"bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb", "bcm2711-rpi-cm4.dtb"} {
		st, err := fs.Stat(n)
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := seen[st.Short]; ok {
			t.Errorf("%s and %s share the short name %s", prev, n, st.Short)
		}
		seen[st.Short] = n
	}
}

func TestShortBasis(t *testing.T) {
	for _, tt := range []struct {
		in, primary, ext string
		fits             bool
	}{
		{"cmdline.txt", "CMDLINE", "TXT", true},
		{"VMLINUZ", "VMLINUZ", "", true},
		{"gokrazy.conf", "GOKRAZY", "CON", false},
		{"bcm2710-rpi-3-b.dtb", "BCM2710-", "DTB", false},
		{".hidden", "HIDDEN", "", false},
		{"a+b.txt", "A_B", "TXT", false},
	} {
		p, e, f := ShortBasis(tt.in)
		if p != tt.primary || e != tt.ext || f != tt.fits {
			t.Errorf("ShortBasis(%q) = %q %q %v, want %q %q %v", tt.in, p, e, f, tt.primary, tt.ext, tt.fits)
		}
	}
}

func TestOpenRejectsWhatGokrazyCannotRead(t *testing.T) {
	img, _ := buildImage(t, sampleFiles())
	orig, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	twoFATs := bytes.Clone(orig[:1<<20])
	twoFATs[16] = 2
	if _, err := Open(bytes.NewReader(twoFATs)); err == nil || !strings.Contains(err.Error(), "byte 16") {
		t.Errorf("two FATs: err = %v, want one naming byte 16", err)
	}
	badSig := bytes.Clone(orig[:1<<20])
	badSig[510] = 0
	if _, err := Open(bytes.NewReader(badSig)); err == nil || !strings.Contains(err.Error(), "byte 510") {
		t.Errorf("bad signature: err = %v, want one naming byte 510", err)
	}

	// Break vmlinuz's chain in the middle: reading it must fail, not return
	// bytes from elsewhere.
	fs, err := Open(bytes.NewReader(orig))
	if err != nil {
		t.Fatal(err)
	}
	st, err := fs.Stat("vmlinuz")
	if err != nil {
		t.Fatal(err)
	}
	frag := bytes.Clone(orig)
	entry := ReservedSectors*SectorSize + 2*(int(st.Cluster)+3)
	binary.LittleEndian.PutUint16(frag[entry:], st.Cluster+10)
	fs2, err := Open(bytes.NewReader(frag))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs2.ReadFile("vmlinuz"); err == nil || !strings.Contains(err.Error(), "not contiguous") {
		t.Errorf("fragmented file: err = %v, want 'not contiguous'", err)
	}
}

func TestWriteRejectsBadInput(t *testing.T) {
	b := NewBuilder()
	if err := b.AddFile("a/b.txt", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := b.AddFile("A/B.TXT", []byte("y")); err == nil {
		t.Error("adding the same name in another case succeeded")
	}
	if err := b.AddFile("a/b.txt/c", []byte("y")); err == nil {
		t.Error("adding below a file succeeded")
	}
	if err := b.AddFile("x?.txt", nil); err == nil {
		t.Error("a name with '?' was accepted")
	}
	small := NewBuilder()
	if err := small.AddFile("big", make([]byte, 20<<20)); err != nil {
		t.Fatal(err)
	}
	const sectors = 16 << 20 / SectorSize
	f, err := os.Create(filepath.Join(t.TempDir(), "small"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := small.Write(f, Options{TotalSectors: sectors}); err == nil || !strings.Contains(err.Error(), "clusters") {
		t.Errorf("overfull file system: err = %v", err)
	}
}
