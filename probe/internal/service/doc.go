// Package service is the running probe: it wires the stages together
// (the storage and its ring, the capture, the presses, window #N's
// bookkeeping, its export while it is open and at its end, the upload, the
// status page and the feedback) and holds back the windows that must wait
// to be saved, retrying them.
package service
