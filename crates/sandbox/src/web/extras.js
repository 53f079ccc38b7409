// Parts of the Web API most calls never touch, kept in a second module that
// the prelude loads on first use of one of its globals (see `EXTRAS` in
// http.js): an idle agent does not pay for them. It reads what it needs
// from the prelude through a hidden global the prelude sets for the load.
const internals = globalThis.__phalanxInternals;
const { host, define, encoder, decoder, toBytes, EMPTY, concatBytes } = internals;
