// Plain Verilator C++ harness for cimflow_core_fpga: the same workload file as the cocotb
// throughput test (benchmarks/bench_cases.py), driven through the host ports with no Python.
// Prints one line: cycles, MVMs and seconds of the programming and MVM phases, and the
// number of output registers that differed from the golden answers (must be 0).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

static Vtop* top;
static uint64_t cycles = 0;

static void tick() {
    top->clk = 1;
    top->eval();
    top->clk = 0;
    top->eval();
    ++cycles;
}

static void cmd(int op, int arg) {
    top->cmd_op = op;
    top->cmd_arg = arg;
    top->cmd_valid = 1;
    tick();
    top->cmd_valid = 0;
}

static void wait_done() {
    while (!top->done) tick();
}

static void write_reg(int bank, int line, int value) {
    top->p_addr = (bank << 8) | line;
    top->p_wdata = value;
    top->p_we = 1;
    tick();
    while (!top->p_ready) tick();
    top->p_we = 0;
}

static int read_reg(int bank, int line) {
    top->p_addr = (bank << 8) | line;
    top->p_re = 1;
    tick();
    while (!top->p_ready) tick();
    top->p_re = 0;
    tick();
    return top->p_rdata;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s CASES_FILE\n", argv[0]);
        return 2;
    }
    std::ifstream in(argv[1]);
    int w, rows, cols, ncells;
    in >> w >> rows >> cols >> ncells;
    std::vector<int> cell(3 * ncells);
    for (int& v : cell) in >> v;
    int nmvm;
    in >> nmvm;
    struct Mvm { long long head[8]; std::vector<int> bl, sl, expect; };
    std::vector<Mvm> mvms(nmvm);
    for (Mvm& m : mvms) {
        for (long long& h : m.head) in >> h;
        m.bl.resize(rows);
        m.sl.resize(cols);
        m.expect.resize(m.head[7] ? cols : rows);
        for (int& v : m.bl) in >> v;
        for (int& v : m.sl) in >> v;
        for (int& v : m.expect) in >> v;
    }
    if (!in) {
        std::fprintf(stderr, "truncated cases file %s\n", argv[1]);
        return 2;
    }

    Verilated::commandArgs(argc, argv);
    top = new Vtop;
    top->cs_n = 1;
    top->rst = 1;
    tick();
    tick();
    top->rst = 0;
    tick();
    for (int k = 0; k < rows; ++k) write_reg(0, k, 0);
    for (int k = 0; k < cols; ++k) write_reg(1, k, 0);

    auto t0 = std::chrono::steady_clock::now();
    uint64_t c0 = cycles;
    int pr = -1, pc = -1;
    for (int i = 0; i < ncells; ++i) {
        int r = cell[3 * i], c = cell[3 * i + 1], code = cell[3 * i + 2];
        if (r != pr) { if (pr >= 0) write_reg(0, pr, 0); write_reg(0, r, 1); }
        if (c != pc) { if (pc >= 0) write_reg(1, pc, 0); write_reg(1, c, 1); }
        pr = r;
        pc = c;
        int pulses[2][2] = {{255, code / 255}, {code % 255, 1}};
        for (auto& p : pulses) {
            if (p[0] && p[1]) {
                cmd(0xA, p[0]);  // SET_PULSE
                cmd(0xB, p[1]);  // SET_WIDTH
                cmd(0xC, 1);     // PROGRAM SET
                wait_done();
            }
        }
    }
    auto t1 = std::chrono::steady_clock::now();
    uint64_t c1 = cycles;
    long bad = 0;
    for (Mvm& m : mvms) {
        for (int k = 0; k < rows; ++k) write_reg(0, k, m.bl[k]);
        for (int k = 0; k < cols; ++k) write_reg(1, k, m.sl[k]);
        top->d_units = m.head[4];
        top->inject_units = m.head[5];
        top->clip_units = m.head[6];
        cmd(0x1, m.head[0]);  // SET_MODE
        cmd(0x2, m.head[1]);  // SET_PRECISION
        cmd(0x4, m.head[2]);  // SET_IN_LEN
        cmd(0x3, m.head[3]);  // SET_INJECT
        cmd(0x5, 0);          // MVM
        wait_done();
        for (size_t k = 0; k < m.expect.size(); ++k)
            bad += read_reg((int)m.head[7], (int)k) != m.expect[k];
    }
    auto t2 = std::chrono::steady_clock::now();
    uint64_t c2 = cycles;
    double sp = std::chrono::duration<double>(t1 - t0).count();
    double sm = std::chrono::duration<double>(t2 - t1).count();
    std::printf("program_cycles %llu program_seconds %.6f mvm_cycles %llu mvm_seconds %.6f "
                "mvms %d mismatches %ld\n", (unsigned long long)(c1 - c0), sp,
                (unsigned long long)(c2 - c1), sm, nmvm, bad);
    top->final();
    delete top;
    return bad ? 1 : 0;
}
