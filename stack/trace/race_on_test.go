//go:build race

package trace

// raceEnabled is set when the tests run with -race, which makes them about
// ten times slower.
const raceEnabled = true
