/* A stand-in for Windows' bcryptprimitives.dll, which Wine 8 does not ship.
 *
 * Rust's std on Windows imports ProcessPrng from bcryptprimitives.dll (for HashMap seeds and the
 * like); without it every Rust binary dies at load with STATUS_DLL_NOT_FOUND (exit status 53,
 * c0000135) under Wine 8. This stub exports ProcessPrng and fills the buffer with RtlGenRandom
 * (advapi32!SystemFunction036). Used by .ci/run's Windows step only; never shipped.
 *
 * Build: x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll bcryptprimitives.c -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
