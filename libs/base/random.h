// The suite's cryptographically secure random bytes (OpenSSL's CSPRNG).
//
// Small draws (nonces, ids, data keys: a dozen per stored person) come from a
// per-thread buffer refilled with RAND_bytes 4 KiB at a time: one OpenSSL
// call per ~100 draws instead of one each. (RAND_bytes costs about half a
// microsecond a call in locking and DRBG bookkeeping whatever the length, and
// a getpid() system call for its fork check; on the development VM that
// made id generation 7% of a bulk import's CPU.) Bytes handed out are wiped
// from the buffer at once, the rest when the thread ends. A fork() child
// never reuses its parent's buffered bytes: the generation bumped in the
// child makes every buffer refill first.
#pragma once

#include <cstddef>

namespace crm::base {

// Fills out[0..n) with random bytes; aborts if the CSPRNG fails (nothing
// can go on safely without it).
void FillRandom(void* out, size_t n);

}  // namespace crm::base
