/*
 * A QEMU TCG plugin that counts the guest instructions a program executes,
 * for scripts/bench's ARMv6 table (qemu-arm -cpu arm1176 -plugin ...).
 *
 * Each translation block adds its instruction count to one counter every
 * time it runs (an inline add: no callback per block). A block left early
 * (a fault, a syscall) still counts whole, which is negligible for the
 * compute loops measured here. Conditional ARM instructions whose condition
 * fails are counted too: the ARM1176 spends an issue slot on them as well.
 *
 * Arguments: out=PATH writes the count (a decimal number) to PATH at exit;
 * without it, the count goes to QEMU's log (stderr).
 *
 * Build: cc -shared -fPIC -O2 -I<qemu>/include/qemu insncount.c
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t executed;
static char out_path[4096];

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed,
                                             qemu_plugin_tb_n_insns(tb));
}

static void on_exit(qemu_plugin_id_t id, void *unused)
{
    char line[64];
    (void)id;
    (void)unused;
    snprintf(line, sizeof line, "%" PRIu64 "\n", executed);
    if (out_path[0]) {
        FILE *f = fopen(out_path, "w");
        if (f) {
            fputs(line, f);
            fclose(f);
            return;
        }
    }
    qemu_plugin_outs("insncount: ");
    qemu_plugin_outs(line);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            snprintf(out_path, sizeof out_path, "%s", argv[i] + 4);
        } else {
            fprintf(stderr, "insncount: unknown argument %s (expected out=PATH)\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_exit, NULL);
    return 0;
}
