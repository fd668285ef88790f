/* LD_PRELOAD shim for booth builds without ClusterLabs/booth PR #139
 * ("transport: Fix _find_myself for kernel 6.9").  Since Linux 6.9 the kernel
 * appends NLMSG_DONE to the last batch of an RTM_GETADDR dump; old booth only
 * looks for NLMSG_DONE at the start of each recvmsg() buffer and then blocks
 * forever (boothd daemon and every booth client command hang).
 * This shim splits such a batch: data messages now, NLMSG_DONE on the next call. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <linux/netlink.h>

static ssize_t (*real_recvmsg)(int, struct msghdr *, int);
static int pend_fd = -1;
static char pend_buf[256];
static size_t pend_len;

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	ssize_t n;
	int dom, len, count = 0;
	socklen_t sl = sizeof(dom);
	struct nlmsghdr *h, *first, *last = NULL;

	if (!real_recvmsg)
		real_recvmsg = (ssize_t (*)(int, struct msghdr *, int))dlsym(RTLD_NEXT, "recvmsg");
	if (fd == pend_fd && msg->msg_iovlen >= 1 && msg->msg_iov[0].iov_len >= pend_len) {
		memcpy(msg->msg_iov[0].iov_base, pend_buf, pend_len);
		pend_fd = -1;
		return (ssize_t)pend_len;
	}
	n = real_recvmsg(fd, msg, flags);
	if (n <= 0 || msg->msg_iovlen < 1 || (size_t)n > msg->msg_iov[0].iov_len)
		return n;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &sl) != 0 || dom != AF_NETLINK)
		return n;
	first = h = (struct nlmsghdr *)msg->msg_iov[0].iov_base;
	len = (int)n;
	for (; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
		last = h;
		count++;
	}
	if (count > 1 && last->nlmsg_type == NLMSG_DONE && last->nlmsg_len <= sizeof(pend_buf)) {
		pend_len = last->nlmsg_len;
		memcpy(pend_buf, last, pend_len);
		pend_fd = fd;
		return (char *)last - (char *)first;
	}
	return n;
}
