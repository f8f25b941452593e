// Package upload: see its issue. This file holds the package's configuration
// section, which probe/config embeds under the JSON key "upload".
package upload

// Config is this package's section of the probe configuration.
// Placeholder until its issue lands: fields arrive with the implementation.
type Config struct{}

// DefaultConfig returns the configuration used when the file omits the section.
func DefaultConfig() Config { return Config{} }

// Validate reports the first problem, naming the JSON field.
func (c Config) Validate() error { return nil }
