// Replays launches recorded by EmulatedDevice.startRecording in a sanitizer build (ThreadSanitizer or
// AddressSanitizer): each launch gets fresh buffers of exactly the recorded sizes, filled with the recorded contents,
// and runs in the emulator's threads mode (one pthread per CUDA thread), so that the sanitizer sees every data race
// between the threads of a block and every out-of-bounds access of global, shared or local memory.
//
//   emu_replay RECORDING LIBDIR SUFFIX      (loads LIBDIR/lib{module}{SUFFIX}.so)
// Exit code 0 when every launch ran; 3 when the emulator itself reported an error; the sanitizer's own code on a report.
#include <dlfcn.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

typedef int (*LaunchFn)(const char*, const unsigned*, const unsigned*, void**, int, char*, int);

static FILE* in;
static uint32_t u32() { uint32_t v; if (fread(&v, 4, 1, in) != 1) { fprintf(stderr, "truncated recording\n"); exit(2); } return v; }
static uint64_t u64() { uint64_t v; if (fread(&v, 8, 1, in) != 1) { fprintf(stderr, "truncated recording\n"); exit(2); } return v; }
static std::string str() { uint32_t n = u32(); std::string s(n, '\0'); if (n && fread(&s[0], 1, n, in) != n) exit(2); return s; }

int main(int argc, char** argv) {
    if (argc != 4) { fprintf(stderr, "usage: emu_replay RECORDING LIBDIR SUFFIX\n"); return 2; }
    in = fopen(argv[1], "rb");
    if (!in) { perror(argv[1]); return 2; }
    std::map<int, std::vector<char>> snapshots;
    std::map<std::string, void*> libs;
    int launches = 0;
    for (;;) {
        uint32_t tag = u32();
        if (tag == 0x444e4521) break;                                   // "!END"
        if (tag == 0x434f4c41) {                                        // "ALOC"
            int id = (int)u32();
            uint64_t size = u64();
            std::vector<char>& buf = snapshots[id];
            buf.resize(size);
            if (size && fread(buf.data(), 1, size, in) != size) { fprintf(stderr, "truncated recording\n"); return 2; }
            continue;
        }
        if (tag != 0x484e4c4c) { fprintf(stderr, "bad tag %x\n", tag); return 2; }
        std::string module = str(), name = str();
        unsigned grid[3] = {u32(), 1, 1}, block[3] = {u32(), 1, 1};
        int nargs = (int)u32();
        std::vector<uint64_t> cells(nargs);
        std::vector<void*> params(nargs);
        std::vector<char*> fresh;
        std::map<int, char*> bufs;
        for (int i = 0; i < nargs; i++) {
            u32();                                                      // size (the module knows it)
            uint64_t value = u64();
            int id = (int)u32();
            uint64_t offset = u64();
            if (id >= 0) {
                char*& b = bufs[id];
                if (!b) {
                    const std::vector<char>& snap = snapshots.at(id);
                    b = (char*)malloc(snap.size() ? snap.size() : 1);   // exact size: the sanitizer's redzone is right after it
                    memcpy(b, snap.data(), snap.size());
                    fresh.push_back(b);
                }
                value = (uint64_t)(uintptr_t)(b + offset);
            }
            cells[i] = value;
            params[i] = &cells[i];
        }
        void*& lib = libs[module];
        if (!lib) {
            std::string path = std::string(argv[2]) + "/lib" + module + argv[3] + ".so";
            lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
            if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 2; }
        }
        LaunchFn launch = (LaunchFn)dlsym(lib, "emu_module_launch");
        char err[2048] = {0};
        if (launch(name.c_str(), grid, block, params.data(), 1, err, sizeof err) != 0) {
            fprintf(stderr, "emulator error in %s: %s\n", name.c_str(), err);
            return 3;
        }
        for (char* b : fresh) free(b);
        launches++;
    }
    printf("replayed %d launches\n", launches);
    return 0;
}
