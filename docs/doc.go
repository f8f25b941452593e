// Package docs is the documentation: it holds no code, and its tests keep
// the links of README.md and docs/ true.
package docs
