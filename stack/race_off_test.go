//go:build !race

package stack_test

const raceDetector = false
