// Package service is the running probe: it wires the stages together
// (the storage and its ring, the capture, the presses, window #N's
// bookkeeping, its export while it is open and at its end, the upload, the
// status page and the feedback). The stages' logic is theirs: the windows
// held back until they can be saved are window.Held, the files written
// while a window is open are package follow's.
package service
