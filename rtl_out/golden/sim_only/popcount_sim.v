// hwgen: simulation variant of the popcount modules of hwgen_top.v (same ports
// and registers); each is proven equal to its adder trees by hwgen.sim.equiv.
/* verilator lint_off DECLFILENAME */

module hwgen_popcount_4(a, clk, rst, y, en_a, en_y);
  input [3:0] a;
  input clk;
  input rst;
  input en_a;
  input en_y;
  /* verilator lint_off PROCASSINIT */   // as Amaranth's: reset value = power-on
  output reg [2:0] y = 3'd0;
  reg [2:0] c0 = 3'd0;
  /* verilator lint_on PROCASSINIT */
  // the ones in each 16-bit group of v, 5 bits a group, group 0 lowest
  function [19:0] count4x16(input [63:0] v);
    reg [63:0] s;
    begin
      s = v - ((v >> 1) & 64'h5555555555555555);
      s = (s & 64'h3333333333333333) + ((s >> 2) & 64'h3333333333333333);
      s = (s + (s >> 4)) & 64'h0f0f0f0f0f0f0f0f;
      s = (s + (s >> 8)) & 64'h001f001f001f001f;
      count4x16 = {s[52:48], s[36:32], s[20:16], s[4:0]};
    end
  endfunction
  /* verilator lint_off UNUSEDSIGNAL */   // a short last chunk's high counts
  reg [19:0] k0;
  /* verilator lint_on UNUSEDSIGNAL */
  always @(posedge clk)
    if (rst) begin
      c0 <= 3'd0;
    end else if (en_a) begin
      /* verilator lint_off BLKSEQ */   // k<j>: this block's temporaries
      k0 = count4x16({60'd0, a[3:0]});
      /* verilator lint_on BLKSEQ */
      c0 <= k0[2:0];
    end
  always @(posedge clk)
    if (rst) y <= 3'd0;
    else if (en_y) y <= c0;
endmodule

module hwgen_popcount_xnor_4(a, x, w, clk, rst, y, en_a, en_y);
  input [3:0] a;
  input [3:0] x;
  input [3:0] w;
  input clk;
  input rst;
  input en_a;
  input en_y;
  /* verilator lint_off PROCASSINIT */   // as Amaranth's: reset value = power-on
  output reg [2:0] y = 3'd0;
  reg [2:0] c0 = 3'd0;
  /* verilator lint_on PROCASSINIT */
  // the ones in each 16-bit group of v, 5 bits a group, group 0 lowest
  function [19:0] count4x16(input [63:0] v);
    reg [63:0] s;
    begin
      s = v - ((v >> 1) & 64'h5555555555555555);
      s = (s & 64'h3333333333333333) + ((s >> 2) & 64'h3333333333333333);
      s = (s + (s >> 4)) & 64'h0f0f0f0f0f0f0f0f;
      s = (s + (s >> 8)) & 64'h001f001f001f001f;
      count4x16 = {s[52:48], s[36:32], s[20:16], s[4:0]};
    end
  endfunction
  /* verilator lint_off UNUSEDSIGNAL */   // a short last chunk's high counts
  reg [19:0] k0;
  /* verilator lint_on UNUSEDSIGNAL */
  always @(posedge clk)
    if (rst) begin
      c0 <= 3'd0;
    end else if (en_a) begin
      /* verilator lint_off BLKSEQ */   // k<j>: this block's temporaries
      k0 = count4x16({60'd0, a[3:0] & ~(x[3:0] ^ w[3:0])});
      /* verilator lint_on BLKSEQ */
      c0 <= k0[2:0];
    end
  always @(posedge clk)
    if (rst) y <= 3'd0;
    else if (en_y) y <= c0;
endmodule

module hwgen_popcount_9(a, clk, rst, y, en_a, en_y);
  input [8:0] a;
  input clk;
  input rst;
  input en_a;
  input en_y;
  /* verilator lint_off PROCASSINIT */   // as Amaranth's: reset value = power-on
  output reg [3:0] y = 4'd0;
  reg [3:0] c0 = 4'd0;
  /* verilator lint_on PROCASSINIT */
  // the ones in each 16-bit group of v, 5 bits a group, group 0 lowest
  function [19:0] count4x16(input [63:0] v);
    reg [63:0] s;
    begin
      s = v - ((v >> 1) & 64'h5555555555555555);
      s = (s & 64'h3333333333333333) + ((s >> 2) & 64'h3333333333333333);
      s = (s + (s >> 4)) & 64'h0f0f0f0f0f0f0f0f;
      s = (s + (s >> 8)) & 64'h001f001f001f001f;
      count4x16 = {s[52:48], s[36:32], s[20:16], s[4:0]};
    end
  endfunction
  /* verilator lint_off UNUSEDSIGNAL */   // a short last chunk's high counts
  reg [19:0] k0;
  /* verilator lint_on UNUSEDSIGNAL */
  always @(posedge clk)
    if (rst) begin
      c0 <= 4'd0;
    end else if (en_a) begin
      /* verilator lint_off BLKSEQ */   // k<j>: this block's temporaries
      k0 = count4x16({55'd0, a[8:0]});
      /* verilator lint_on BLKSEQ */
      c0 <= k0[3:0];
    end
  always @(posedge clk)
    if (rst) y <= 4'd0;
    else if (en_y) y <= c0;
endmodule

module hwgen_popcount_xnor_9(a, x, w, clk, rst, y, en_a, en_y);
  input [8:0] a;
  input [8:0] x;
  input [8:0] w;
  input clk;
  input rst;
  input en_a;
  input en_y;
  /* verilator lint_off PROCASSINIT */   // as Amaranth's: reset value = power-on
  output reg [3:0] y = 4'd0;
  reg [3:0] c0 = 4'd0;
  /* verilator lint_on PROCASSINIT */
  // the ones in each 16-bit group of v, 5 bits a group, group 0 lowest
  function [19:0] count4x16(input [63:0] v);
    reg [63:0] s;
    begin
      s = v - ((v >> 1) & 64'h5555555555555555);
      s = (s & 64'h3333333333333333) + ((s >> 2) & 64'h3333333333333333);
      s = (s + (s >> 4)) & 64'h0f0f0f0f0f0f0f0f;
      s = (s + (s >> 8)) & 64'h001f001f001f001f;
      count4x16 = {s[52:48], s[36:32], s[20:16], s[4:0]};
    end
  endfunction
  /* verilator lint_off UNUSEDSIGNAL */   // a short last chunk's high counts
  reg [19:0] k0;
  /* verilator lint_on UNUSEDSIGNAL */
  always @(posedge clk)
    if (rst) begin
      c0 <= 4'd0;
    end else if (en_a) begin
      /* verilator lint_off BLKSEQ */   // k<j>: this block's temporaries
      k0 = count4x16({55'd0, a[8:0] & ~(x[8:0] ^ w[8:0])});
      /* verilator lint_on BLKSEQ */
      c0 <= k0[3:0];
    end
  always @(posedge clk)
    if (rst) y <= 4'd0;
    else if (en_y) y <= c0;
endmodule

module hwgen_popcount_11(a, clk, rst, y, en_a, en_y);
  input [10:0] a;
  input clk;
  input rst;
  input en_a;
  input en_y;
  /* verilator lint_off PROCASSINIT */   // as Amaranth's: reset value = power-on
  output reg [3:0] y = 4'd0;
  reg [3:0] c0 = 4'd0;
  /* verilator lint_on PROCASSINIT */
  // the ones in each 16-bit group of v, 5 bits a group, group 0 lowest
  function [19:0] count4x16(input [63:0] v);
    reg [63:0] s;
    begin
      s = v - ((v >> 1) & 64'h5555555555555555);
      s = (s & 64'h3333333333333333) + ((s >> 2) & 64'h3333333333333333);
      s = (s + (s >> 4)) & 64'h0f0f0f0f0f0f0f0f;
      s = (s + (s >> 8)) & 64'h001f001f001f001f;
      count4x16 = {s[52:48], s[36:32], s[20:16], s[4:0]};
    end
  endfunction
  /* verilator lint_off UNUSEDSIGNAL */   // a short last chunk's high counts
  reg [19:0] k0;
  /* verilator lint_on UNUSEDSIGNAL */
  always @(posedge clk)
    if (rst) begin
      c0 <= 4'd0;
    end else if (en_a) begin
      /* verilator lint_off BLKSEQ */   // k<j>: this block's temporaries
      k0 = count4x16({53'd0, a[10:0]});
      /* verilator lint_on BLKSEQ */
      c0 <= k0[3:0];
    end
  always @(posedge clk)
    if (rst) y <= 4'd0;
    else if (en_y) y <= c0;
endmodule

module hwgen_popcount_xnor_11(a, x, w, clk, rst, y, en_a, en_y);
  input [10:0] a;
  input [10:0] x;
  input [10:0] w;
  input clk;
  input rst;
  input en_a;
  input en_y;
  /* verilator lint_off PROCASSINIT */   // as Amaranth's: reset value = power-on
  output reg [3:0] y = 4'd0;
  reg [3:0] c0 = 4'd0;
  /* verilator lint_on PROCASSINIT */
  // the ones in each 16-bit group of v, 5 bits a group, group 0 lowest
  function [19:0] count4x16(input [63:0] v);
    reg [63:0] s;
    begin
      s = v - ((v >> 1) & 64'h5555555555555555);
      s = (s & 64'h3333333333333333) + ((s >> 2) & 64'h3333333333333333);
      s = (s + (s >> 4)) & 64'h0f0f0f0f0f0f0f0f;
      s = (s + (s >> 8)) & 64'h001f001f001f001f;
      count4x16 = {s[52:48], s[36:32], s[20:16], s[4:0]};
    end
  endfunction
  /* verilator lint_off UNUSEDSIGNAL */   // a short last chunk's high counts
  reg [19:0] k0;
  /* verilator lint_on UNUSEDSIGNAL */
  always @(posedge clk)
    if (rst) begin
      c0 <= 4'd0;
    end else if (en_a) begin
      /* verilator lint_off BLKSEQ */   // k<j>: this block's temporaries
      k0 = count4x16({53'd0, a[10:0] & ~(x[10:0] ^ w[10:0])});
      /* verilator lint_on BLKSEQ */
      c0 <= k0[3:0];
    end
  always @(posedge clk)
    if (rst) y <= 4'd0;
    else if (en_y) y <= c0;
endmodule

module hwgen_popcount_16(a, clk, rst, y, en_a, en_y);
  input [15:0] a;
  input clk;
  input rst;
  input en_a;
  input en_y;
  /* verilator lint_off PROCASSINIT */   // as Amaranth's: reset value = power-on
  output reg [4:0] y = 5'd0;
  reg [4:0] c0 = 5'd0;
  /* verilator lint_on PROCASSINIT */
  // the ones in each 16-bit group of v, 5 bits a group, group 0 lowest
  function [19:0] count4x16(input [63:0] v);
    reg [63:0] s;
    begin
      s = v - ((v >> 1) & 64'h5555555555555555);
      s = (s & 64'h3333333333333333) + ((s >> 2) & 64'h3333333333333333);
      s = (s + (s >> 4)) & 64'h0f0f0f0f0f0f0f0f;
      s = (s + (s >> 8)) & 64'h001f001f001f001f;
      count4x16 = {s[52:48], s[36:32], s[20:16], s[4:0]};
    end
  endfunction
  /* verilator lint_off UNUSEDSIGNAL */   // a short last chunk's high counts
  reg [19:0] k0;
  /* verilator lint_on UNUSEDSIGNAL */
  always @(posedge clk)
    if (rst) begin
      c0 <= 5'd0;
    end else if (en_a) begin
      /* verilator lint_off BLKSEQ */   // k<j>: this block's temporaries
      k0 = count4x16({48'd0, a[15:0]});
      /* verilator lint_on BLKSEQ */
      c0 <= k0[4:0];
    end
  always @(posedge clk)
    if (rst) y <= 5'd0;
    else if (en_y) y <= c0;
endmodule

module hwgen_popcount_xnor_16(a, x, w, clk, rst, y, en_a, en_y);
  input [15:0] a;
  input [15:0] x;
  input [15:0] w;
  input clk;
  input rst;
  input en_a;
  input en_y;
  /* verilator lint_off PROCASSINIT */   // as Amaranth's: reset value = power-on
  output reg [4:0] y = 5'd0;
  reg [4:0] c0 = 5'd0;
  /* verilator lint_on PROCASSINIT */
  // the ones in each 16-bit group of v, 5 bits a group, group 0 lowest
  function [19:0] count4x16(input [63:0] v);
    reg [63:0] s;
    begin
      s = v - ((v >> 1) & 64'h5555555555555555);
      s = (s & 64'h3333333333333333) + ((s >> 2) & 64'h3333333333333333);
      s = (s + (s >> 4)) & 64'h0f0f0f0f0f0f0f0f;
      s = (s + (s >> 8)) & 64'h001f001f001f001f;
      count4x16 = {s[52:48], s[36:32], s[20:16], s[4:0]};
    end
  endfunction
  /* verilator lint_off UNUSEDSIGNAL */   // a short last chunk's high counts
  reg [19:0] k0;
  /* verilator lint_on UNUSEDSIGNAL */
  always @(posedge clk)
    if (rst) begin
      c0 <= 5'd0;
    end else if (en_a) begin
      /* verilator lint_off BLKSEQ */   // k<j>: this block's temporaries
      k0 = count4x16({48'd0, a[15:0] & ~(x[15:0] ^ w[15:0])});
      /* verilator lint_on BLKSEQ */
      c0 <= k0[4:0];
    end
  always @(posedge clk)
    if (rst) y <= 5'd0;
    else if (en_y) y <= c0;
endmodule
