package upload

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/presscap/presscap/probe/internal/filenames"
)

// QueueFile is one file waiting in the queue.
type QueueFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// isManifest tells manifests, which go last so that the provider's side can
// treat a manifest's arrival as "all its window's files are there".
func isManifest(name string) bool { return strings.HasSuffix(name, ".json") }

// inProgress tells files a writer has not finished: writers create files
// under a dot name or a .tmp/.part suffix and rename them into place.
func inProgress(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".tmp") || strings.HasSuffix(name, ".part")
}

// ListQueue returns the files of the queue directory in upload order:
// windows' files by name (names start with the time, so oldest first), then
// manifests by name. Subdirectories (such as a sent folder), files still
// being written and files whose names the probe does not give (see package
// filenames: the queue is on the customer's disk) are skipped. A missing
// directory is an empty queue; a symlink is refused, never followed.
func ListQueue(dir string) ([]QueueFile, error) {
	files, _, err := scanQueue(dir, nil)
	return files, err
}

// scanQueue is ListQueue, plus the regular files it skipped for their
// names. With hosts, a name must also have one of them as its host part
// (filenames.ProducedBy).
func scanQueue(dir string, hosts []string) (files []QueueFile, foreign []string, err error) {
	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read queue: %w", err)
	}
	if !st.IsDir() {
		return nil, nil, fmt.Errorf("read queue: %s is not a directory (%s): not followed", dir, st.Mode().Type())
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read queue: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || inProgress(e.Name()) {
			continue
		}
		if hosts == nil && !filenames.Produced(e.Name()) || hosts != nil && !filenames.ProducedBy(e.Name(), hosts) {
			foreign = append(foreign, e.Name())
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		files = append(files, QueueFile{Name: e.Name(), Size: info.Size()})
	}
	sort.Slice(files, func(i, j int) bool {
		mi, mj := isManifest(files[i].Name), isManifest(files[j].Name)
		if mi != mj {
			return mj
		}
		return files[i].Name < files[j].Name
	})
	return files, foreign, nil
}
