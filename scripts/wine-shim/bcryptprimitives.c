/* Wine 8 has no bcryptprimitives.dll; Rust's standard library takes its
 * random numbers from ProcessPrng there (Windows 10 and later have it).
 * This stand-in, placed beside the exe under Wine only, forwards to
 * RtlGenRandom (advapi32's SystemFunction036). */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
