// spine-vm-probe: checks the VM's drivers through the kernel interfaces the Rust code uses
// (GPIO character device v2, V4L2 output/capture read/write). Built dynamically on purpose,
// so the selftest also proves that run.sh --files ships an ELF's shared libraries.
//
//   spine-vm-probe gpio /dev/gpiochipN /sys/devices/platform/gpio-sim.0/gpiochipN name0 name1...
//   spine-vm-probe loop /dev/videoN WIDTH HEIGHT FRAMES
#include <errno.h>
#include <fcntl.h>
#include <linux/gpio.h>
#include <linux/videodev2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static int failures;
#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (cond) {                                                            \
            printf("  ok   ");                                                 \
        } else {                                                               \
            printf("  FAIL ");                                                 \
            failures++;                                                        \
        }                                                                      \
        printf(__VA_ARGS__);                                                   \
        printf("\n");                                                          \
    } while (0)

static void sysfs_write(const char *dir, int line, const char *attr, const char *val) {
    char p[512];
    snprintf(p, sizeof p, "%s/sim_gpio%d/%s", dir, line, attr);
    FILE *f = fopen(p, "w");
    if (!f || fputs(val, f) < 0 || fclose(f) != 0) {
        printf("  FAIL write %s: %s\n", p, strerror(errno));
        failures++;
    }
}

static int sysfs_value(const char *dir, int line) {
    char p[512];
    int v = -1;
    snprintf(p, sizeof p, "%s/sim_gpio%d/value", dir, line);
    FILE *f = fopen(p, "r");
    if (f) {
        if (fscanf(f, "%d", &v) != 1) v = -1;
        fclose(f);
    }
    return v;
}

static int request_line(int chip, unsigned off, unsigned long long flags, int initial) {
    struct gpio_v2_line_request req;
    memset(&req, 0, sizeof req);
    req.offsets[0] = off;
    req.num_lines = 1;
    strcpy(req.consumer, "spine-vm-probe");
    req.config.flags = flags;
    if (flags & GPIO_V2_LINE_FLAG_OUTPUT) {
        req.config.num_attrs = 1;
        req.config.attrs[0].attr.id = GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES;
        req.config.attrs[0].attr.values = initial ? 1 : 0;
        req.config.attrs[0].mask = 1;
    }
    if (ioctl(chip, GPIO_V2_GET_LINE_IOCTL, &req) < 0) {
        printf("  FAIL request line %u: %s\n", off, strerror(errno));
        failures++;
        return -1;
    }
    return req.fd;
}

static int line_get(int fd) {
    struct gpio_v2_line_values v = {.bits = 0, .mask = 1};
    if (ioctl(fd, GPIO_V2_LINE_GET_VALUES_IOCTL, &v) < 0) return -1;
    return (int)(v.bits & 1);
}

static int line_set(int fd, int val) {
    struct gpio_v2_line_values v = {.bits = val ? 1 : 0, .mask = 1};
    return ioctl(fd, GPIO_V2_LINE_SET_VALUES_IOCTL, &v);
}

static int gpio(int argc, char **argv) {
    const char *dev = argv[2], *sim = argv[3];
    int chip = open(dev, O_RDWR);
    if (chip < 0) { printf("  FAIL open %s: %s\n", dev, strerror(errno)); return 1; }
    struct gpiochip_info ci;
    CHECK(ioctl(chip, GPIO_GET_CHIPINFO_IOCTL, &ci) == 0, "chip info %s: name=%s label=%s lines=%u",
          dev, ci.name, ci.label, ci.lines);
    for (int i = 4; i < argc; i++) {
        struct gpio_v2_line_info li;
        memset(&li, 0, sizeof li);
        li.offset = (unsigned)(i - 4);
        int r = ioctl(chip, GPIO_V2_GET_LINEINFO_IOCTL, &li);
        CHECK(r == 0 && strcmp(li.name, argv[i]) == 0, "line %u name '%s' (want '%s')", li.offset, li.name, argv[i]);
    }
    // Output: the program drives line 0, gpio-sim's sysfs shows the level.
    int out = request_line(chip, 0, GPIO_V2_LINE_FLAG_OUTPUT, 0);
    if (out >= 0) {
        CHECK(sysfs_value(sim, 0) == 0, "output line 0 = 0 -> sim_gpio0/value %d", sysfs_value(sim, 0));
        line_set(out, 1);
        CHECK(sysfs_value(sim, 0) == 1, "output line 0 = 1 -> sim_gpio0/value %d", sysfs_value(sim, 0));
        line_set(out, 0);
        CHECK(sysfs_value(sim, 0) == 0, "output line 0 = 0 -> sim_gpio0/value %d", sysfs_value(sim, 0));
        close(out);
    }
    // Input: sysfs 'pull' plays the outside world, the program reads it (and gets edge events).
    sysfs_write(sim, 1, "pull", "pull-down");
    int in = request_line(chip, 1, GPIO_V2_LINE_FLAG_INPUT | GPIO_V2_LINE_FLAG_EDGE_RISING |
                                       GPIO_V2_LINE_FLAG_EDGE_FALLING, 0);
    if (in >= 0) {
        CHECK(line_get(in) == 0, "input line 1 with pull-down reads %d", line_get(in));
        sysfs_write(sim, 1, "pull", "pull-up");
        CHECK(line_get(in) == 1, "input line 1 with pull-up reads %d", line_get(in));
        struct pollfd pfd = {.fd = in, .events = POLLIN};
        struct gpio_v2_line_event ev;
        int pr = poll(&pfd, 1, 2000);
        ssize_t n = pr > 0 ? read(in, &ev, sizeof ev) : -1;
        CHECK(n == (ssize_t)sizeof ev && ev.id == GPIO_V2_LINE_EVENT_RISING_EDGE,
              "rising edge event on line 1 (poll %d, read %zd, id %u)", pr, n, n > 0 ? ev.id : 0);
        sysfs_write(sim, 1, "pull", "pull-down");
        pr = poll(&pfd, 1, 2000);
        n = pr > 0 ? read(in, &ev, sizeof ev) : -1;
        CHECK(n == (ssize_t)sizeof ev && ev.id == GPIO_V2_LINE_EVENT_FALLING_EDGE,
              "falling edge event on line 1 (poll %d, read %zd, id %u)", pr, n, n > 0 ? ev.id : 0);
        close(in);
    }
    close(chip);
    return failures != 0;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int loop(int argc, char **argv) {
    const char *dev = argv[2];
    unsigned w = argc > 3 ? (unsigned)atoi(argv[3]) : 640, h = argc > 4 ? (unsigned)atoi(argv[4]) : 480;
    int frames = argc > 5 ? atoi(argv[5]) : 10;
    int wfd = open(dev, O_RDWR);
    if (wfd < 0) { printf("  FAIL open %s: %s\n", dev, strerror(errno)); return 1; }
    struct v4l2_capability cap;
    CHECK(ioctl(wfd, VIDIOC_QUERYCAP, &cap) == 0, "querycap %s: driver=%s card=%s caps=0x%08x", dev,
          cap.driver, cap.card, cap.device_caps);
    struct v4l2_format fmt;
    memset(&fmt, 0, sizeof fmt);
    fmt.type = V4L2_BUF_TYPE_VIDEO_OUTPUT;
    fmt.fmt.pix.width = w;
    fmt.fmt.pix.height = h;
    fmt.fmt.pix.pixelformat = V4L2_PIX_FMT_GREY;
    fmt.fmt.pix.field = V4L2_FIELD_NONE;
    int r = ioctl(wfd, VIDIOC_S_FMT, &fmt);
    CHECK(r == 0 && fmt.fmt.pix.width == w && fmt.fmt.pix.height == h, "S_FMT output %ux%u GREY -> %ux%u sizeimage %u",
          w, h, fmt.fmt.pix.width, fmt.fmt.pix.height, fmt.fmt.pix.sizeimage);
    if (r != 0) return 1;
    size_t size = fmt.fmt.pix.sizeimage;
    unsigned char *buf = malloc(size), *got = malloc(size);
    // A new reader starts at frame 0: open it before the first write so that read i returns
    // write i (v4l2loopback: a reader more than 2 frames behind jumps to the newest frame).
    int rfd = open(dev, O_RDWR);
    if (rfd < 0) { printf("  FAIL open reader: %s\n", strerror(errno)); return 1; }
    int ok = 0;
    double t0 = now_s();
    for (int i = 0; i < frames; i++) {
        for (size_t j = 0; j < size; j++) buf[j] = (unsigned char)(j * 7 + i * 13);
        ssize_t wn = write(wfd, buf, size);
        ssize_t rn = read(rfd, got, size);
        if (wn == (ssize_t)size && rn == (ssize_t)size && memcmp(buf, got, size) == 0) ok++;
        else printf("  frame %d: wrote %zd read %zd %s\n", i, wn, rn, rn == (ssize_t)size ? "(content differs)" : strerror(errno));
    }
    double dt = now_s() - t0;
    CHECK(ok == frames, "%d/%d frames written and read back identical (%.1f fps write+read)", ok, frames, frames / dt);
    close(rfd);
    close(wfd);
    return failures != 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 4 && strcmp(argv[1], "gpio") == 0) return gpio(argc, argv);
    if (argc >= 3 && strcmp(argv[1], "loop") == 0) return loop(argc, argv);
    fprintf(stderr, "usage: %s gpio CHIPDEV SIMDIR NAMES... | loop DEV [W H FRAMES]\n", argv[0]);
    return 2;
}
