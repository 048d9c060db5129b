/*
 * libjpeg-turbo's side of scripts/bench's ARMv6 instruction counts:
 * encodes the same YUYV frame N times the way bench/src/lib.rs does on x86
 * (repacked to planar I420 inside the loop, its cheapest input; quality
 * 80, 4:2:0), through the TurboJPEG 3 API.
 *
 * usage: turbo_frames FRAME.yuyv WIDTH HEIGHT [i420] N
 *
 * With i420 the repack happens once, before the loop: the frame is then
 * planar YU12 as rpicam-vid delivers it, and only the compression counts.
 */
#include <stdio.h>
#include <stdlib.h>

#include <turbojpeg.h>

/* As bench/src/lib.rs's yuyv_to_i420: luma copied, the chroma of each row
 * pair averaged (rounding up). */
static void repack(const unsigned char *yuyv, int w, int h, unsigned char *y,
                   unsigned char *u, unsigned char *v)
{
    for (int r = 0; r < h; r++) {
        const unsigned char *s = yuyv + (size_t)r * w * 2;
        unsigned char *yr = y + (size_t)r * w;
        for (int x = 0; x < w; x++)
            yr[x] = s[x * 2];
    }
    for (int cy = 0; cy < h / 2; cy++) {
        const unsigned char *r0 = yuyv + (size_t)(2 * cy) * w * 2, *r1 = r0 + (size_t)w * 2;
        unsigned char *ur = u + (size_t)cy * (w / 2), *vr = v + (size_t)cy * (w / 2);
        for (int cx = 0; cx < w / 2; cx++) {
            ur[cx] = (unsigned char)((r0[cx * 4 + 1] + r1[cx * 4 + 1] + 1) / 2);
            vr[cx] = (unsigned char)((r0[cx * 4 + 3] + r1[cx * 4 + 3] + 1) / 2);
        }
    }
}

int main(int argc, char **argv)
{
    int planar = argc == 6 && argv[4][0] == 'i';
    if (argc != 5 && !planar) {
        fprintf(stderr, "usage: turbo_frames FRAME.yuyv WIDTH HEIGHT [i420] N\n");
        return 2;
    }
    int w = atoi(argv[2]), h = atoi(argv[3]), n = atoi(argv[argc - 1]);
    if (w <= 0 || h <= 0 || w % 2 || h % 2 || n < 0) {
        fprintf(stderr, "turbo_frames: bad size or count\n");
        return 2;
    }
    size_t len = (size_t)w * h * 2;
    unsigned char *yuyv = malloc(len);
    unsigned char *y = malloc((size_t)w * h), *u = malloc((size_t)w * h / 4),
                  *v = malloc((size_t)w * h / 4);
    FILE *f = fopen(argv[1], "rb");
    if (!yuyv || !y || !u || !v || !f || fread(yuyv, 1, len, f) != len) {
        fprintf(stderr, "turbo_frames: cannot read %zu bytes from %s\n", len, argv[1]);
        return 1;
    }
    fclose(f);
    tjhandle tj = tj3Init(TJINIT_COMPRESS);
    if (!tj || tj3Set(tj, TJPARAM_QUALITY, 80) || tj3Set(tj, TJPARAM_SUBSAMP, TJSAMP_420) ||
        tj3Set(tj, TJPARAM_NOREALLOC, 1)) {
        fprintf(stderr, "turbo_frames: %s\n", tj3GetErrorStr(tj));
        return 1;
    }
    const unsigned char *planes[3] = {y, u, v};
    int strides[3] = {w, w / 2, w / 2};
    /* One output buffer of the worst-case size, reused for every frame. */
    size_t cap = tj3JPEGBufSize(w, h, TJSAMP_420);
    unsigned char *jpeg = tj3Alloc(cap);
    if (!jpeg) {
        fprintf(stderr, "turbo_frames: out of memory\n");
        return 1;
    }
    size_t total = 0;
    if (planar)
        repack(yuyv, w, h, y, u, v);
    for (int i = 0; i < n; i++) {
        if (!planar)
            repack(yuyv, w, h, y, u, v);
        size_t size = cap;
        if (tj3CompressFromYUVPlanes8(tj, planes, w, strides, h, &jpeg, &size)) {
            fprintf(stderr, "turbo_frames: %s\n", tj3GetErrorStr(tj));
            return 1;
        }
        total += size;
    }
    printf("%d frames, %zu bytes\n", n, total);
    tj3Free(jpeg);
    tj3Destroy(tj);
    return 0;
}
