//go:build race

package stack_test

// raceDetector is set when the tests run with -race, which makes the stacks
// about ten times slower.
const raceDetector = true
