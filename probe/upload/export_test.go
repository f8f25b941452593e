package upload

// RateBurst exposes the limiter's burst to the wire test (package upload_test).
var RateBurst = rateBurst
