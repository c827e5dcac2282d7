// JNI entry points of the emulated CUDA device (EmulatedDevice.java): open a module built from a .cu source with
// cuda_emu.h, describe one of its kernels, launch it. Device memory, copies and GEMM are done on the Java side.
#include <jni.h>
#include <dlfcn.h>
#include <string>

typedef int (*KernelInfoFn)(const char*, int*, int*, int*);
typedef int (*LaunchFn)(const char*, const unsigned*, const unsigned*, void**, int, char*, int);

static std::string str(JNIEnv* env, jstring s) {
    const char* c = env->GetStringUTFChars(s, nullptr);
    std::string r(c);
    env->ReleaseStringUTFChars(s, c);
    return r;
}

extern "C" {

// A module handle, or 0 with the dlerror text in error[0].
JNIEXPORT jlong JNICALL Java_ai_longrwkv_core_backend_cuda_EmulatorNative_open(JNIEnv* env, jclass, jstring path, jobjectArray error) {
    void* h = dlopen(str(env, path).c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
        const char* e = dlerror();
        env->SetObjectArrayElement(error, 0, env->NewStringUTF(e ? e : "dlopen failed"));
        return 0;
    }
    return (jlong)h;
}

// [maxThreads, nparams, size0, size1, ...] or null when the module has no such kernel.
JNIEXPORT jintArray JNICALL Java_ai_longrwkv_core_backend_cuda_EmulatorNative_kernel(JNIEnv* env, jclass, jlong module, jstring name) {
    KernelInfoFn info = (KernelInfoFn)dlsym((void*)module, "emu_module_kernel");
    if (info == nullptr) return nullptr;
    int maxThreads = 0, nparams = 0, sizes[32];
    if (!info(str(env, name).c_str(), &maxThreads, &nparams, sizes)) return nullptr;
    jintArray out = env->NewIntArray(2 + nparams);
    jint buf[34];
    buf[0] = maxThreads;
    buf[1] = nparams;
    for (int i = 0; i < nparams; i++) buf[2 + i] = sizes[i];
    env->SetIntArrayRegion(out, 0, 2 + nparams, buf);
    return out;
}

// Runs the kernel; null on success, else the emulator's error message. params: the host address of an array of
// pointers to the argument cells, exactly what cuLaunchKernel takes.
JNIEXPORT jstring JNICALL Java_ai_longrwkv_core_backend_cuda_EmulatorNative_launch(JNIEnv* env, jclass, jlong module, jstring name,
        jint gx, jint gy, jint gz, jint bx, jint by, jint bz, jlong params, jboolean threads) {
    LaunchFn launch = (LaunchFn)dlsym((void*)module, "emu_module_launch");
    if (launch == nullptr) return env->NewStringUTF("the module has no emu_module_launch");
    unsigned g[3] = {(unsigned)gx, (unsigned)gy, (unsigned)gz}, b[3] = {(unsigned)bx, (unsigned)by, (unsigned)bz};
    char err[2048];
    err[0] = 0;
    int rc = launch(str(env, name).c_str(), g, b, (void**)params, threads ? 1 : 0, err, (int)sizeof err);
    return rc == 0 ? nullptr : env->NewStringUTF(err);
}

}
