// The scheduler of the CUDA emulation (see cuda_emu.h): compiled into every emulated module, one copy per module.
#pragma once

namespace emu {

thread_local Thread* current = nullptr;
Launch launchConfig;
static void** launchArgs = nullptr;
static const KernelEntry* launchKernel = nullptr;

std::string site(const Thread& t) {
    return std::string(t.file ? t.file : "?") + ":" + std::to_string(t.line);
}

static std::string where(const Thread& t) {
    return "thread (" + std::to_string(t.tid.x) + "," + std::to_string(t.tid.y) + "," + std::to_string(t.tid.z) + ")";
}

static void setError(Block& b, const std::string& message) {
    if (!b.failed) {
        b.failed = true;
        b.error = message;
    }
}

static unsigned laneOf(const Thread& t) { return (unsigned)(t.linear & 31); }
static int warpBase(const Thread& t) { return t.linear & ~31; }

static float bf16ToFloat(unsigned bits16) { return __uint_as_float((bits16 & 0xffffu) << 16); }

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 for the 32 lanes of the warp at base (all waiting at it), in the
// fragment layout of the PTX ISA (section "Matrix Fragments for mma.m16n8k16 with floating point type"), with
// groupID = lane / 4 and threadID_in_group = lane % 4:
//   A (16x16, .row): a0..a7, two per 32-bit register, the lower index in the low half; element ai is at
//     row = groupID + 8 * (i in {2,3,6,7}), col = 2 * threadID_in_group + (i & 1) + 8 * (i >= 4);
//   B (16x8, .col): b0..b3 at row = 2 * threadID_in_group + (i & 1) + 8 * (i >= 2), col = groupID;
//   C, D (16x8, f32): c0..c3 at row = groupID + 8 * (i >= 2), col = 2 * threadID_in_group + (i & 1).
// Each product of two bf16 values is exact in fp32; the sum D = C + sum_k A[r][k] B[k][c] is accumulated here in fp32,
// k ascending, one rounding per addition. A tensor core's order and internal precision are its own (not IEEE-specified):
// callers' error bounds must allow any fp32 summation order (16 additions), which is tiny next to bf16 rounding.
static void completeMma(Block& b, int base) {
    float A[16][16], B[16][8], Cm[16][8];
    for (int l = 0; l < 32; l++) {
        const MmaLane& m = *reinterpret_cast<const MmaLane*>((uintptr_t)b.threads[base + l].value);
        const int g = l >> 2, q = l & 3;
        for (int i = 0; i < 8; i++) {
            const int row = g + ((i == 2 || i == 3 || i == 6 || i == 7) ? 8 : 0), col = 2 * q + (i & 1) + (i >= 4 ? 8 : 0);
            A[row][col] = bf16ToFloat(m.a[i >> 1] >> (16 * (i & 1)));
        }
        for (int i = 0; i < 4; i++) {
            const int row = 2 * q + (i & 1) + (i >= 2 ? 8 : 0), col = g;
            B[row][col] = bf16ToFloat(m.b[i >> 1] >> (16 * (i & 1)));
        }
        for (int i = 0; i < 4; i++) Cm[g + (i >= 2 ? 8 : 0)][2 * q + (i & 1)] = m.c[i];
    }
    float D[16][8];
    for (int r = 0; r < 16; r++) for (int c = 0; c < 8; c++) {
        float acc = Cm[r][c];
        for (int k = 0; k < 16; k++) acc = acc + A[r][k] * B[k][c];
        D[r][c] = acc;
    }
    for (int l = 0; l < 32; l++) {
        const MmaLane& m = *reinterpret_cast<const MmaLane*>((uintptr_t)b.threads[base + l].value);
        const int g = l >> 2, q = l & 3;
        for (int i = 0; i < 4; i++) m.d[i] = D[g + (i >= 2 ? 8 : 0)][2 * q + (i & 1)];
    }
}

// Completes the warp collective of the lanes in t's mask (all of them waiting at it); false with an error if not allowed.
static void completeWarp(Block& b, Thread& t) {
    const int base = warpBase(t);
    const unsigned mask = t.mask;
    for (int l = 0; l < 32; l++) {
        if (!(mask >> l & 1u)) continue;
        Thread& o = b.threads[base + l];
        if (o.op != t.op || o.mask != mask || o.file != t.file || o.line != t.line) {
            setError(b, "warp collective: lanes of mask 0x" + [&] { char h[16]; std::snprintf(h, 16, "%x", mask); return std::string(h); }()
                    + " are at different calls (" + where(t) + " at " + site(t) + ", " + where(o) + " at " + site(o) + ")");
            return;
        }
    }
    if (t.op == OP_MMA) {
        if (mask != 0xffffffffu) {
            setError(b, "mma.sync at " + site(t) + " without all 32 lanes of the warp (.aligned)");
            return;
        }
        completeMma(b, base);
        for (int l = 0; l < 32; l++) b.threads[base + l].wait = RUNNING;
        return;
    }
    uint64_t ballot = 0;
    int any = 0, all = 1;
    for (int l = 0; l < 32; l++) {
        if (!(mask >> l & 1u)) continue;
        uint64_t v = b.threads[base + l].value;
        if (v) { ballot |= 1ull << l; any = 1; } else all = 0;
    }
    for (int l = 0; l < 32; l++) {
        if (!(mask >> l & 1u)) continue;
        Thread& o = b.threads[base + l];
        const int width = o.width;
        if (width <= 0 || width > 32 || (width & (width - 1)) != 0) {
            setError(b, "warp shuffle width " + std::to_string(width) + " is not a power of two <= 32 at " + site(o));
            return;
        }
        const int lane = l, seg = lane & ~(width - 1);
        int src = lane;
        switch (o.op) {
            case OP_SHFL: src = seg + (o.arg & (width - 1)); break;
            case OP_SHFL_XOR: src = lane ^ o.arg; if ((src & ~(width - 1)) != seg || src > 31 || src < 0) src = lane; break;
            case OP_SHFL_DOWN: src = lane + o.arg; if (src >= seg + width) src = lane; break;
            case OP_SHFL_UP: src = lane - o.arg; if (src < seg) src = lane; break;
            default: break;
        }
        switch (o.op) {
            case OP_SHFL: case OP_SHFL_XOR: case OP_SHFL_DOWN: case OP_SHFL_UP:
                if (!(mask >> src & 1u)) {
                    setError(b, "warp shuffle at " + site(o) + ": " + where(o) + " reads lane " + std::to_string(src)
                            + ", which is not in the mask");
                    return;
                }
                o.result = b.threads[base + src].value;
                break;
            case OP_BALLOT: o.result = ballot; break;
            case OP_ANY: o.result = (uint64_t)any; break;
            case OP_ALL: o.result = (uint64_t)all; break;
            default: o.result = 0; break;
        }
    }
    for (int l = 0; l < 32; l++) if (mask >> l & 1u) b.threads[base + l].wait = RUNNING;
}

// Releases whatever can move: the block barrier when every thread waits at it, warp collectives whose lanes have all
// arrived. When nothing runs and nothing can be released, the launch is stuck: an error that says who waits where.
// Returns true if something was released. Threads mode calls it under the block's mutex.
static bool resolve(Block& b, bool anyRunning) {
    if (b.failed) return false;
    int atBarrier = 0, done = 0, atWarp = 0;
    for (const Thread& t : b.threads) {
        if (t.wait == AT_BARRIER) atBarrier++;
        else if (t.wait == DONE) done++;
        else if (t.wait == AT_WARP) atWarp++;
    }
    bool released = false;
    if (atBarrier == b.n) {
        const Thread& first = b.threads[0];
        for (const Thread& t : b.threads) {
            if (t.file != first.file || t.line != first.line) {
                setError(b, "__syncthreads: threads wait at different barriers (" + where(first) + " at " + site(first) + ", "
                        + where(t) + " at " + site(t) + "): a barrier inside a branch");
                return false;
            }
        }
        for (Thread& t : b.threads) t.wait = RUNNING;
        b.barrierGeneration++;
        return true;
    }
    if (atWarp > 0) {
        for (Thread& t : b.threads) {
            if (t.wait != AT_WARP) continue;
            const int base = warpBase(t);
            bool ready = true;
            for (int l = 0; l < 32 && ready; l++) {
                if (!(t.mask >> l & 1u)) continue;
                if (base + l >= b.n) {
                    setError(b, "warp collective at " + site(t) + ": the mask names lane " + std::to_string(l)
                            + ", which does not exist in a block of " + std::to_string(b.n) + " threads");
                    return false;
                }
                if (b.threads[base + l].wait != AT_WARP) ready = false;
            }
            if (ready) {
                completeWarp(b, t);
                if (b.failed) return false;
                released = true;
            }
        }
    }
    if (released || anyRunning || done == b.n) return released;
    // stuck: nothing runs and nothing can be released
    std::string msg;
    if (atBarrier > 0) {
        const Thread* w = nullptr;
        for (const Thread& t : b.threads) if (t.wait == AT_BARRIER) { w = &t; break; }
        msg = "__syncthreads at " + site(*w) + " reached by " + std::to_string(atBarrier) + " of " + std::to_string(b.n)
                + " threads";
        if (done > 0) msg += " (" + std::to_string(done) + " had already returned: a barrier not reached by every thread)";
        if (atWarp > 0) msg += "; " + std::to_string(atWarp) + " wait at warp collectives";
    } else {
        const Thread* w = nullptr;
        for (const Thread& t : b.threads) if (t.wait == AT_WARP) { w = &t; break; }
        char h[16];
        std::snprintf(h, 16, "%x", w->mask);
        msg = "warp collective at " + site(*w) + " with mask 0x" + h + " by " + where(*w)
                + " never completes: a lane of the mask returned or waits elsewhere (deadlock)";
    }
    setError(b, msg);
    return false;
}

// ------------------------------------------------------------------ fibers
static void yieldFiber(Thread& t) {
    swapcontext(&t.ctx, &t.block->scheduler);
}

static void fiberEntry() {
    Thread* t = current;
    launchKernel->invoke(launchArgs);
    t->wait = DONE;
    // returning follows uc_link back to the scheduler
}

// ------------------------------------------------------------------ threads
static void* threadEntry(void* p) {
    Thread* t = static_cast<Thread*>(p);
    current = t;
    try {
        launchKernel->invoke(launchArgs);
    } catch (const Abort&) {
    }
    Block& b = *t->block;
    pthread_mutex_lock(&b.mu);
    t->wait = DONE;
    bool running = false;
    for (const Thread& o : b.threads) if (o.wait == RUNNING) { running = true; break; }
    resolve(b, running);
    pthread_cond_broadcast(&b.cv);
    pthread_mutex_unlock(&b.mu);
    return nullptr;
}

static bool anyRunning(const Block& b) {
    for (const Thread& o : b.threads) if (o.wait == RUNNING) return true;
    return false;
}

static void waitInThreadsMode(Block& b, Thread& t) {
    resolve(b, anyRunning(b));
    pthread_cond_broadcast(&b.cv);
    while ((t.wait == AT_BARRIER || t.wait == AT_WARP) && !b.failed) pthread_cond_wait(&b.cv, &b.mu);
}

// ------------------------------------------------------------------ the device functions
void fail(Thread& t, const std::string& message) {
    Block& b = *t.block;
    if (b.threadsMode) {
        pthread_mutex_lock(&b.mu);
        setError(b, where(t) + ": " + message);
        pthread_cond_broadcast(&b.cv);
        pthread_mutex_unlock(&b.mu);
        throw Abort();
    }
    setError(b, where(t) + ": " + message);
    t.wait = DONE;
    setcontext(&b.scheduler);   // never resumed
    __builtin_unreachable();
}

void barrier(const char* file, int line) {
    Thread& t = *current;
    Block& b = *t.block;
    if (b.threadsMode) {
        pthread_mutex_lock(&b.mu);
        t.file = file; t.line = line; t.wait = AT_BARRIER;
        waitInThreadsMode(b, t);
        bool failed = b.failed;
        pthread_mutex_unlock(&b.mu);
        if (failed) throw Abort();
        return;
    }
    t.file = file; t.line = line; t.wait = AT_BARRIER;
    yieldFiber(t);
}

uint64_t warpCollective(int op, unsigned mask, uint64_t value, int arg, int width, const char* file, int line) {
    Thread& t = *current;
    if (!(mask >> laneOf(t) & 1u)) {
        char h[16];
        std::snprintf(h, 16, "%x", mask);
        fail(t, std::string("warp collective at ") + file + ":" + std::to_string(line) + " with mask 0x" + h
                + " called by lane " + std::to_string(laneOf(t)) + ", which is not in the mask");
    }
    Block& b = *t.block;
    if (b.threadsMode) pthread_mutex_lock(&b.mu);
    t.op = op; t.mask = mask; t.value = value; t.arg = arg; t.width = width; t.file = file; t.line = line;
    t.wait = AT_WARP;
    if (b.threadsMode) {
        waitInThreadsMode(b, t);
        bool failed = b.failed;
        uint64_t r = t.result;
        pthread_mutex_unlock(&b.mu);
        if (failed) throw Abort();
        return r;
    }
    yieldFiber(t);
    return t.result;
}

static const size_t FIBER_STACK = 256 * 1024;

static std::string runBlock(Block& b) {
    if (b.threadsMode) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 1 << 20);
        int started = 0;
        for (Thread& t : b.threads) {
            if (pthread_create(&t.os, &attr, threadEntry, &t) != 0) {
                pthread_mutex_lock(&b.mu);
                setError(b, "could not start emulated thread " + std::to_string(t.linear) + " (pthread_create)");
                pthread_cond_broadcast(&b.cv);
                pthread_mutex_unlock(&b.mu);
                break;
            }
            started++;
        }
        for (int i = 0; i < started; i++) pthread_join(b.threads[i].os, nullptr);
        pthread_attr_destroy(&attr);
        return b.failed ? b.error : std::string();
    }
    static thread_local std::vector<char*> stacks;
    while ((int)stacks.size() < b.n) stacks.push_back(static_cast<char*>(std::malloc(FIBER_STACK)));
    for (int i = 0; i < b.n; i++) {
        Thread& t = b.threads[i];
        getcontext(&t.ctx);
        t.ctx.uc_stack.ss_sp = stacks[i];
        t.ctx.uc_stack.ss_size = FIBER_STACK;
        t.ctx.uc_link = &b.scheduler;
        makecontext(&t.ctx, fiberEntry, 0);
    }
    for (;;) {
        for (Thread& t : b.threads) {
            if (t.wait != RUNNING) continue;
            current = &t;
            swapcontext(&b.scheduler, &t.ctx);
            if (b.failed) return b.error;
        }
        bool allDone = true;
        for (const Thread& t : b.threads) if (t.wait != DONE) { allDone = false; break; }
        if (allDone) return std::string();
        resolve(b, false);
        if (b.failed) return b.error;
    }
}

std::string run(const KernelEntry& k, dim3 grid, dim3 block, void** args, bool threadsMode) {
    const long long n = (long long)block.x * block.y * block.z;
    if (n <= 0 || n > 1024) return "block of " + std::to_string(n) + " threads (CUDA allows 1..1024)";
    if (k.maxThreads > 0 && n > k.maxThreads) {
        return "block of " + std::to_string(n) + " threads exceeds the kernel's __launch_bounds__(" + std::to_string(k.maxThreads) + ")";
    }
    launchConfig.grid = grid;
    launchConfig.block = block;
    launchArgs = args;
    launchKernel = &k;
    for (unsigned z = 0; z < grid.z; z++) for (unsigned y = 0; y < grid.y; y++) for (unsigned x = 0; x < grid.x; x++) {
        Block b;
        b.idx = uint3{x, y, z};
        b.n = (int)n;
        b.threadsMode = threadsMode;
        b.threads.resize((size_t)n);
        int i = 0;
        for (unsigned tz = 0; tz < block.z; tz++) for (unsigned ty = 0; ty < block.y; ty++) for (unsigned tx = 0; tx < block.x; tx++) {
            Thread& t = b.threads[i];
            t.tid = uint3{tx, ty, tz};
            t.linear = i++;
            t.block = &b;
        }
        std::string e = runBlock(b);
        current = nullptr;
        if (!e.empty()) {
            return std::string(k.name) + " block (" + std::to_string(x) + "," + std::to_string(y) + "," + std::to_string(z)
                    + "): " + e;
        }
    }
    return std::string();
}

}  // namespace emu
